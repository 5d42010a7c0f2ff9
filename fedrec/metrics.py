"""Full-ranking metrics: the held-out item is ranked against ALL items.

This is the protocol of S3-Rec's ``run_finetune_full`` so figures compare with the
published Beauty table. Pure functions over tensors; ranks are 0-based.

Ties are counted against the target (pessimistic): a model that gives many items the same
score as the target does not get credit for an arbitrary tie-break. A constant scorer thus
gets HR@K = 0 rather than a lucky index-order hit.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

DEFAULT_KS = (5, 10, 20)


def mask_seen(scores: torch.Tensor, histories: Sequence[np.ndarray]) -> torch.Tensor:
    """Set already-seen items and the padding column 0 to -inf, in place; returns scores."""
    scores[:, 0] = -torch.inf
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories) if len(histories) else np.empty(0, dtype=np.int64)
    scores[torch.from_numpy(rows), torch.from_numpy(cols.astype(np.int64))] = -torch.inf
    return scores


RANK_BLOCK_ROWS = 64  # rows compared at a time: a 64 x 12k float32 block (3 MB) stays in cache


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all columns: #items scored >= target, minus itself.

    scores: (B, n_items + 1); targets: (B,) item indices. Returns (B,) int64.
    """
    target_scores = scores.gather(1, targets.view(-1, 1))  # (B, 1)
    # The comparisons are written as 0/1 floats and summed: the same count as summing the
    # boolean mask, about 10x faster (a bool -> int64 sum is not vectorised), and exact
    # (every partial sum is a whole number below 2**24, or 2**53 in float64). A few rows
    # at a time into one reused buffer: no (B, n_items + 1) mask to allocate per batch.
    rows, columns = scores.shape
    dtype = torch.float32 if columns < 2**24 else torch.float64
    at_least = torch.empty(rows, dtype=dtype, device=scores.device)  # includes the target itself
    buffer = torch.empty((min(rows, RANK_BLOCK_ROWS), columns), dtype=dtype, device=scores.device)
    for start in range(0, rows, RANK_BLOCK_ROWS):
        stop = min(start + RANK_BLOCK_ROWS, rows)
        block = buffer[: stop - start]
        torch.ge(scores[start:stop], target_scores[start:stop], out=block)
        torch.sum(block, dim=1, out=at_least[start:stop])
    ranks = at_least.to(torch.int64) - 1
    # A target scored -inf (masked, or never scorable) is ranked last.
    ranks[torch.isneginf(target_scores.view(-1))] = scores.shape[1]
    return ranks


def hit_rate(ranks: torch.Tensor, k: int) -> float:
    """Share of users whose target is in the top k. Range [0, 1]."""
    return float((ranks < k).double().mean()) if ranks.numel() else 0.0


def ndcg(ranks: torch.Tensor, k: int) -> float:
    """Mean 1/log2(rank + 2) over users with the target in the top k (one relevant item)."""
    if not ranks.numel():
        return 0.0
    gains = 1.0 / torch.log2(ranks.double() + 2.0)
    return float(torch.where(ranks < k, gains, torch.zeros_like(gains)).mean())


def mrr(ranks: torch.Tensor) -> float:
    """Mean reciprocal rank, no cut-off. Range (0, 1]."""
    return float((1.0 / (ranks.double() + 1.0)).mean()) if ranks.numel() else 0.0


def summarize(ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """The metrics block of metrics.json: hr@k and ndcg@k for each k, then mrr."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(ranks, k)
        out[f"ndcg@{k}"] = ndcg(ranks, k)
    out["mrr"] = mrr(ranks)
    return out
