"""Batches of item sequences for next-item models: padding, and which positions predict."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def right_pad(sequences: Sequence[np.ndarray], length: int | None = None) -> torch.Tensor:
    """(B, L) item ids, zero-padded on the right (0 is the padding item)."""
    length = length or max((len(s) for s in sequences), default=1)
    padded = np.zeros((len(sequences), max(1, length)), dtype=np.int64)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = seq
    return torch.from_numpy(padded)


def last_targets(windows: Sequence[np.ndarray], rows: Sequence[int], last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each chosen window (inputs = w[:-1], targets = w[1:]), the positions and targets
    of its ``last`` most recent predictions, zero-padded: (B, K) positions, (B, K) targets.
    A per-user loss over a fixed K keeps every user's share of a DP-SGD step bounded."""
    k = max(1, min(last, max(len(windows[r]) - 1 for r in rows)))
    positions = np.zeros((len(rows), k), dtype=np.int64)
    targets = np.zeros((len(rows), k), dtype=np.int64)
    for i, r in enumerate(rows):
        w = windows[r]
        n = min(k, len(w) - 1)
        start = len(w) - 1 - n
        positions[i, :n] = np.arange(start, start + n)
        targets[i, :n] = w[start + 1 : start + 1 + n]
    return torch.from_numpy(positions), torch.from_numpy(targets)


def gather_positions(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, L, d) states at (B, K) positions -> (B, K, d)."""
    return states.gather(1, positions.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
