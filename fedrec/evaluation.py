"""Evaluate any recommender on an EvalSet with the full-ranking metrics.

Depends only on the model interface (``score``), so a model is measured the same way
wherever it was trained: centrally, on a client, or after federated aggregation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch

from fedrec.data.split import EvalSet
from fedrec.metrics import DEFAULT_KS, mask_seen, summarize, target_ranks
from fedrec.progress import bar

if TYPE_CHECKING:
    from fedrec.models.base import Recommender

log = logging.getLogger("fedrec.eval")

EVAL_BATCH_USERS = 1024  # (1024 x 12k float32 = 50 MB of scores at a time)


@dataclass(frozen=True)
class EvaluationPass:
    """What one ranking of every evaluated user gives: the held-out item's 0-based rank and,
    when asked, each user's top-k list (what the audits read, so nothing ranks twice)."""

    ranks: torch.Tensor  # (U,)
    top_items: np.ndarray | None  # (U, k) item ids, best first; None when k = 0


def evaluation_pass(model: "Recommender", eval_set: EvalSet, *, mask_history: bool = True, top_k: int = 0) -> EvaluationPass:
    """Score every user once; rank the held-out item against all items, and keep the top
    ``top_k`` items (seen items excluded as in ranking)."""
    ranks, tops = [], []
    with torch.no_grad(), bar(logger=log, desc="evaluating", total=len(eval_set.users), unit="user") as progress:
        for start in range(0, len(eval_set.users), EVAL_BATCH_USERS):
            stop = start + EVAL_BATCH_USERS
            histories = eval_set.histories[start:stop]
            scores = model.score(eval_set.users[start:stop], histories).float()
            if mask_history:
                mask_seen(scores, histories)
            else:
                scores[:, 0] = -torch.inf
            targets = torch.from_numpy(eval_set.targets[start:stop])
            ranks.append(target_ranks(scores, targets))
            if top_k:
                tops.append(torch.topk(scores, k=min(top_k, scores.shape[1] - 1), dim=1).indices.numpy())
            progress.update(len(targets))
    all_ranks = torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.int64)
    top_items = (np.concatenate(tops) if tops else np.empty((0, top_k), dtype=np.int64)) if top_k else None
    return EvaluationPass(all_ranks, top_items)


def rank_targets(model: "Recommender", eval_set: EvalSet, *, mask_history: bool = True) -> torch.Tensor:
    """(U,) 0-based full-ranking rank of each user's held-out item."""
    return evaluation_pass(model, eval_set, mask_history=mask_history).ranks


def evaluate(
    model: "Recommender", eval_set: EvalSet, *, mask_history: bool = True, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, float]:
    return summarize(rank_targets(model, eval_set, mask_history=mask_history), ks)
