"""SecAgg+ masks at full strength (fedrec.federation.secagg_masks): Flower's generator folds a
256-bit seed to 32 bits; fedrec's uses all of it, on both ends of the protocol."""

from __future__ import annotations

import os

import numpy as np
from flwr.common.secure_aggregation import secaggplus_utils

from fedrec.federation import client_app, secagg_masks, secure_rounds  # noqa: F401  (importing installs it)
from fedrec.federation.secagg_masks import full_strength_rand_gen, installed

SHAPES = [(3, 4), (), (5,)]
RANGE = 2**32


def _folded_twin(seed: bytes) -> bytes:
    """Another seed Flower's generator cannot tell apart: the same 32-bit XOR fold."""
    flip = bytes([0x5A, 0xC3, 0x0F, 0x99])
    xored = bytes(a ^ b for a, b in zip(seed[:4], flip)) + bytes(a ^ b for a, b in zip(seed[4:8], flip))
    return xored + seed[8:]


def test_flowers_generator_reads_32_bits_of_the_seed_and_fedrecs_all_of_them():
    seed = os.urandom(32)
    twin = _folded_twin(seed)
    assert twin != seed
    flower = [np.array_equal(a, b) for a, b in zip(secaggplus_utils.pseudo_rand_gen(seed, RANGE, SHAPES),
                                                    secaggplus_utils.pseudo_rand_gen(twin, RANGE, SHAPES))]
    assert all(flower)  # the weakness the issue names: two seeds, one mask
    ours = full_strength_rand_gen(seed, RANGE, SHAPES)
    assert not np.array_equal(ours[0], full_strength_rand_gen(twin, RANGE, SHAPES)[0])
    for bit in range(8 * len(seed)):  # every one of the 256 seed bits changes the mask
        flipped = bytearray(seed)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not np.array_equal(ours[0], full_strength_rand_gen(bytes(flipped), RANGE, SHAPES)[0]), bit


def test_the_masks_keep_flowers_shapes_and_range_and_both_parties_draw_the_same():
    seed = os.urandom(44)  # a pairwise key: urlsafe base64 of 32 bytes
    masks = full_strength_rand_gen(seed, RANGE, SHAPES)
    assert [m.shape for m in masks] == SHAPES and all(m.dtype == np.int64 for m in masks)
    assert all(0 <= int(m.min()) and int(m.max()) < RANGE for m in masks)
    again = full_strength_rand_gen(seed, RANGE, SHAPES)  # the neighbour, or the server rebuilding a dropout's mask
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))
    big = full_strength_rand_gen(seed, 2**8, [(100_000,)])[0]  # a power of two: the low bits of 32-bit words
    assert abs(big.mean() - 127.5) < 1.0 and len(np.unique(big)) == 2**8
    other = full_strength_rand_gen(seed, 1000, [(100_000,)])[0]  # any other range: 64-bit words modulo it
    assert abs(other.mean() - 499.5) < 4.0 and len(np.unique(other)) == 1000 and other.max() < 1000


def test_the_client_mod_and_the_server_workflow_both_use_it():
    assert installed()
