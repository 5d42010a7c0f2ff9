"""SecAgg+ masks at full strength.

Flower 1.41's ``pseudo_rand_gen`` (flwr/common/secure_aggregation/secaggplus_utils.py) XOR-folds
every mask seed, a store's 256-bit private seed and each pairwise key alike, to 32 bits and
seeds numpy's RandomState (Mersenne Twister) with it: a mask can take at most 2^32 values, so
a server holding a masked vector could try every seed. Both ends of a fedrec federation run
fedrec's code, so ``install`` puts ``full_strength_rand_gen`` in its place in Flower's client
mod and in its server workflow: the same signature and shapes, its masks a ChaCha20 keystream
(the ``cryptography`` package) keyed by SHA-256 of the whole seed, uniform modulo the
protocol's range. Flower's protocol, key agreement, secret sharing and encryption are unchanged.

Every process that masks or unmasks must have installed it (the ClientApp and fedrec's
secure rounds do on import): a store with Flower's generator and a server with this one would
unmask noise. Deployments run the same fedrec on both ends (docs/deployment.md).
"""

from __future__ import annotations

import hashlib
import importlib
import math

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

MASKING_MODULES = ("flwr.client.mod.secure_aggregation.secaggplus_mod",
                   "flwr.server.workflow.secure_aggregation.secaggplus_workflow")
BYTES_PER_ENTRY = 8  # 64 random bits per entry: modulo a range of at most 2^32, the bias is below 2^-32
NONCE = bytes(16)  # one key, one stream: every seed is fresh per round (SecAgg+ makes new keys each setup)


def full_strength_rand_gen(seed: bytes, num_range: int, dimensions_list: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Flower's ``pseudo_rand_gen`` with the whole seed: int64 arrays of the given shapes, each
    entry uniform in [0, num_range), from ChaCha20 keyed by SHA-256(seed). A power-of-two range
    of at most 2^32 (fedrec's, 2^32) takes the low bits of 32-bit words, exactly uniform and
    half the keystream (a mask of the main job's 290,203 coordinates: 7.2 ms -> 1.3 ms);
    any other range, 64-bit words modulo the range."""
    sizes = [math.prod(shape) for shape in dimensions_list]  # a scalar's shape () has one entry
    key = hashlib.sha256(bytes(seed)).digest()
    words = num_range <= 2**32 and num_range & (num_range - 1) == 0
    width = 4 if words else BYTES_PER_ENTRY
    stream = Cipher(algorithms.ChaCha20(key, NONCE), mode=None).encryptor().update(bytes(width * sum(sizes)))
    if words:
        values = (np.frombuffer(stream, dtype="<u4") & np.uint32(num_range - 1)).astype(np.int64)
    else:
        values = (np.frombuffer(stream, dtype="<u8") % np.uint64(num_range)).astype(np.int64)
    parts = np.split(values, np.cumsum(sizes)[:-1]) if sizes else []
    return [part.reshape(shape) for part, shape in zip(parts, dimensions_list)]


def install() -> None:
    """Replace Flower's 32-bit mask generator in its client mod and server workflow (idempotent)."""
    for name in MASKING_MODULES:
        importlib.import_module(name).pseudo_rand_gen = full_strength_rand_gen


def installed() -> bool:
    """Whether both of Flower's masking modules use the full-strength generator."""
    return all(importlib.import_module(name).pseudo_rand_gen is full_strength_rand_gen for name in MASKING_MODULES)
