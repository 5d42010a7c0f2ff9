"""Noise and sampling that only the releasing party knows: ChaCha20 keyed by 256 bits of OS entropy.

A DP guarantee against a party holds only while that party cannot predict the draws. Seeds
derived from the run config and the store's name (what fedrec did before) are public to the
server, which could regenerate a share's noise and subtract it. So every draw a guarantee
relies on (Poisson sampling, the Gaussian noise of DP-SGD and of distributed shares, the
prior's noisy counts, server-side DP) comes from a ``SecretNoise``: a fresh key from
``os.urandom`` for each release, never written anywhere, never sent, never derived from
``--seed`` (which keeps deciding partitions, initialisation and batch order). Each purpose,
round and step reads its own ChaCha20 nonce, so no two draws share keystream.

Gaussians follow Opacus' secure mode against floating-point attacks on the sampler
(Mironov 2012; arXiv:2107.10138, section 5.1): each draw is the sum of four standard
Gaussians (Box-Muller) over two, in the reference's precision as Opacus draws them: float32
for model parameters (24-bit uniforms), float64 for counts (53-bit uniforms). Opacus' own secure mode needs
torchcsprng, which no longer installs against the pinned torch; ``cryptography`` does the
keystream here, so nothing seeds a ``torch.Generator`` from it.
"""

from __future__ import annotations

import enum
import math
import os
import struct
from typing import Sequence

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

KEY_BYTES = 32  # ChaCha20's 256-bit key
_UNIT = 2.0 ** -53
_LOW_53 = (1 << 53) - 1  # the low 53 bits of a keystream word: a uniform integer below 2^53
_UNIT_32 = 2.0 ** -24
_LOW_24 = (1 << 24) - 1  # float32 holds 24 significant bits


class Purpose(enum.IntEnum):
    """What a stream of draws is for: each has its own nonce space."""

    SAMPLING = 1  # Poisson sampling of users into a DP-SGD batch
    SGD_NOISE = 2  # DP-SGD's Gaussian noise on the clipped gradient sum
    SHARE_NOISE = 3  # a store's share of distributed DP's noise
    COUNT_NOISE = 4  # noisy item counts (the popularity prior, DP popularity)
    SERVER_NOISE = 5  # server-side DP (--dp central) on the aggregate
    CANARY_SAMPLING = 6  # Poisson sampling of the privacy audit's Dirac canaries (fedrec.privacy.canaries)


class SecretNoise:
    """One release's secret generator. Make one with ``fresh()``; the key stays in memory."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a SecretNoise key is {KEY_BYTES} bytes, got {len(key)}")
        self._key = bytes(key)

    @classmethod
    def fresh(cls) -> "SecretNoise":
        return cls(os.urandom(KEY_BYTES))

    def __repr__(self) -> str:  # never the key
        return "SecretNoise(<secret key>)"

    def __reduce__(self):  # a key never travels, not even to a worker process
        raise TypeError("SecretNoise holds a secret key and is not pickled; make a fresh one where the draw happens")

    def keystream(self, size: int, *, purpose: Purpose, round_number: int, step: int) -> np.ndarray:
        """(size,) uint8 of ChaCha20 keystream for one (purpose, round, step)."""
        if not (0 <= round_number < 2**32 and 0 <= step < 2**32):
            raise ValueError(f"round {round_number} and step {step} must fit in 32 bits")
        # cryptography's ChaCha20 nonce: a 4-byte little-endian block counter, then the 96-bit nonce.
        nonce = struct.pack("<IIII", 0, int(purpose), round_number, step)
        out = np.empty(size + 15, dtype=np.uint8)  # update_into wants block-size - 1 spare bytes
        Cipher(algorithms.ChaCha20(self._key, nonce), mode=None).encryptor().update_into(bytes(size), out)
        return out[:size]

    def uniform(self, size: int, *, purpose: Purpose, round_number: int, step: int,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """(size,) uniforms in (0, 1), never exactly 0 or 1: 53 random bits each in float64,
        24 in float32 (every bit the type holds)."""
        if dtype == torch.float64:
            words = self.keystream(8 * size, purpose=purpose, round_number=round_number, step=step).view(np.int64)
            return ((torch.from_numpy(words) & _LOW_53).to(torch.float64) + 0.5) * _UNIT
        words = self.keystream(4 * size, purpose=purpose, round_number=round_number, step=step).view(np.int32)
        return ((torch.from_numpy(words) & _LOW_24).to(torch.float32) + 0.5) * _UNIT_32

    def standard_normal(self, size: int, *, purpose: Purpose, round_number: int, step: int,
                        dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """(size,) N(0, 1) in ``dtype`` (float32 or float64): (z1 + z2 + z3 + z4) / 2 of four
        Box-Muller draws, as Opacus' secure mode sums four of torch's normals."""
        pairs = 2 * size  # four Gaussians per draw, two per Box-Muller pair
        u = self.uniform(2 * pairs, purpose=purpose, round_number=round_number, step=step, dtype=dtype)
        radius = torch.log(u[:pairs]).mul_(-2.0).sqrt_()
        angle = u[pairs:].mul_(2.0 * math.pi)
        z = torch.cat([torch.cos(angle).mul_(radius), torch.sin(angle).mul_(radius)])  # (4 size,)
        return z.view(4, size).sum(dim=0).div_(2.0)

    def gaussian_like(self, reference: torch.Tensor, std: float, *, purpose: Purpose, round_number: int,
                      step: int) -> torch.Tensor:
        """N(0, std^2) in the shape, dtype and device of ``reference`` (zeros when std is 0)."""
        if std == 0:
            return torch.zeros_like(reference)
        dtype = torch.float64 if reference.dtype == torch.float64 else torch.float32
        draws = self.standard_normal(reference.numel(), purpose=purpose, round_number=round_number, step=step, dtype=dtype)
        return draws.mul_(std).reshape(reference.shape).to(dtype=reference.dtype, device=reference.device)

    def gaussians_like(self, references: Sequence[torch.Tensor], std: float, *, purpose: Purpose, round_number: int,
                       step: int) -> list[torch.Tensor]:
        """N(0, std^2) for each of ``references`` (a model's parameters), one draw for them all."""
        flat = torch.cat([reference.reshape(-1) for reference in references])
        drawn = self.gaussian_like(flat, std, purpose=purpose, round_number=round_number, step=step)
        return [part.view_as(reference) for part, reference in
                zip(torch.split(drawn, [reference.numel() for reference in references]), references)]

    def poisson_sample(self, population: int, rate: float, *, round_number: int, step: int,
                       purpose: Purpose = Purpose.SAMPLING) -> np.ndarray:
        """Indices of ``population`` members each kept independently with probability ``rate``."""
        if population == 0:
            return np.zeros(0, dtype=np.int64)
        kept = self.uniform(population, purpose=purpose, round_number=round_number, step=step) < rate
        return np.flatnonzero(kept.numpy())
