"""Poisson bootstrap with weights seeded per customer, so clients can share the replicates.

In replicate ``b`` customer ``u`` counts ``w_b(u) ~ Poisson(1)`` times (TFMA's and Chamandy
et al.'s Poisson bootstrap: no resampling of a fixed-size set, so it splits over
partitions). The weight is a pure function of (seed, customer key, b):

    x      = mix(mix(seed + g) XOR H(key))          H: BLAKE2b-64 of str(key)
    u_b    = mix(x + (b + 1) g) >> 11               the b-th output of SplitMix64 seeded with x
    w_b(u) = smallest n with u_b < 2^53 P(N <= n),  N ~ Poisson(1)

(g = 0x9E3779B97F4A7C15, mix = SplitMix64's finaliser). So a client holding customer u
draws the same weights as the server would, whatever other customers it holds and in
whatever order: adding the clients' weighted sums gives the replicates of the whole
population exactly. Keys must be the customers' raw ids (or pseudonyms), stable across
clients; dense user indices are not (each client numbers its own users from 0). A
customer held by two clients (the same pseudonym in two stores) gets the same weights in
both: the resampling unit is the customer.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Iterable, Sequence

import numpy as np

from fedrec.errors import ConfigError, DataError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PERSON = b"fedrec-boot"  # BLAKE2b personalisation: these hashes mean nothing elsewhere
_CHUNK_USERS = 2048  # (2048 x 200 uint64 = 3.3 MB per step: stays in cache, no 36 MB temporaries)


def _poisson_thresholds() -> np.ndarray:
    """2^53 P(N <= n) for N ~ Poisson(1), n = 0.. until the rest is below 2^-53."""
    cdf, term, out = 0.0, math.exp(-1.0), []
    for n in range(1, 40):
        cdf += term
        out.append(min(int(cdf * 2**53), 2**53))
        if out[-1] >= 2**53:
            break
        term /= n
    return np.array(out, dtype=np.uint64)


_THRESHOLDS = _poisson_thresholds()  # 18 values; read-only by convention
_THRESHOLDS.setflags(write=False)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place on a uint64 array (wrapping arithmetic)."""
    tmp = np.empty_like(z)
    np.right_shift(z, np.uint64(30), out=tmp)
    z ^= tmp
    z *= _M1
    np.right_shift(z, np.uint64(27), out=tmp)
    z ^= tmp
    z *= _M2
    np.right_shift(z, np.uint64(31), out=tmp)
    z ^= tmp
    return z


def customer_hashes(keys: Iterable[object]) -> np.ndarray:
    """(U,) uint64 BLAKE2b-64 of ``str(key)``: the same customer hashes the same everywhere."""
    digests = (hashlib.blake2b(str(key).encode("utf-8"), digest_size=8, person=_PERSON).digest() for key in keys)
    return np.fromiter((int.from_bytes(d, "little") for d in digests), dtype=np.uint64)


def _streams(hashes: np.ndarray, seed: int) -> np.ndarray:
    seeded = _mix(np.array([seed % 2**64], dtype=np.uint64) + _GOLDEN)
    return _mix(hashes.astype(np.uint64) ^ seeded)


def _weights(streams: np.ndarray, n_boot: int) -> np.ndarray:
    """(len(streams), n_boot) uint8 Poisson(1) weights of the given SplitMix64 streams."""
    steps = np.arange(1, n_boot + 1, dtype=np.uint64) * _GOLDEN
    u = _mix(streams[:, None] + steps[None, :])
    u >>= np.uint64(11)
    weights = (u >= _THRESHOLDS[0]).view(np.uint8)
    weights += u >= _THRESHOLDS[1]
    rare = np.flatnonzero(u >= _THRESHOLDS[2])  # weight 3 or more: about 8% of draws
    weights.flat[rare] = np.searchsorted(_THRESHOLDS, u.flat[rare], side="right")
    return weights


def poisson_weights(hashes: np.ndarray, *, seed: int, n_boot: int) -> np.ndarray:
    """(U, n_boot) uint8: customer u's Poisson(1) weight in each replicate."""
    _check_n_boot(n_boot)
    return _weights(_streams(np.asarray(hashes, dtype=np.uint64), seed), n_boot)


def weighted_cell_sums(hashes: np.ndarray, cells: np.ndarray, *, n_cells: int, seed: int, n_boot: int) -> np.ndarray:
    """(n_boot, n_cells) int64: per replicate, the summed weights of the customers in each cell.

    ``cells`` (U,) puts each customer in one cell (e.g. group x rank). Integer sums, so
    clients' shares add exactly.
    """
    _check_n_boot(n_boot)
    cells = np.asarray(cells, dtype=np.int64)
    hashes = np.asarray(hashes, dtype=np.uint64)
    if cells.shape != hashes.shape:
        raise DataError(f"{len(hashes)} customer keys for {len(cells)} users; give one key per evaluated user.")
    out = np.zeros((n_cells, n_boot), dtype=np.int64)
    if n_boot == 0 or not len(cells):
        return out.T.copy()
    order = np.argsort(cells, kind="stable")
    streams, sorted_cells = _streams(hashes[order], seed), cells[order]
    for start in range(0, len(cells), _CHUNK_USERS):
        chunk = sorted_cells[start:start + _CHUNK_USERS]
        firsts = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1]])
        weights = _weights(streams[start:start + _CHUNK_USERS], n_boot)
        out[chunk[firsts]] += np.add.reduceat(weights, firsts, axis=0, dtype=np.int64)
    return out.T.copy()


def percentile_interval(replicates: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """(len(quantiles), ...) percentiles over axis 0, NaN replicates (undefined) left out."""
    if not len(replicates):
        return np.full((len(quantiles), *replicates.shape[1:]), np.nan)
    with warnings.catch_warnings():  # an all-NaN column is reported as None, not warned about
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(replicates, list(quantiles), axis=0)


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(q) for q in quantiles)
    if not values or any(not 0.0 <= q <= 100.0 for q in values) or list(values) != sorted(values):
        raise ConfigError(f"quantiles {list(quantiles)}: give increasing percentiles in [0, 100], e.g. (2.5, 97.5).")
    return values


def _check_n_boot(n_boot: int) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ConfigError(f"n_boot={n_boot!r}: give a whole number of replicates >= 0 (0: no intervals).")
