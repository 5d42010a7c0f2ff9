"""Evaluate any recommender on an EvalSet with the full-ranking metrics.

Depends only on the model interface (``score``), so a model is measured the same way
wherever it was trained: centrally, on a client, or after federated aggregation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

import torch

from fedrec.data.split import EvalSet
from fedrec.metrics import DEFAULT_KS, mask_seen, summarize, target_ranks
from fedrec.progress import bar

if TYPE_CHECKING:
    from fedrec.models.base import Recommender

log = logging.getLogger("fedrec.eval")

EVAL_BATCH_USERS = 1024  # (1024 x 12k float32 = 50 MB of scores at a time)


def rank_targets(model: "Recommender", eval_set: EvalSet, *, mask_history: bool = True) -> torch.Tensor:
    """(U,) 0-based full-ranking rank of each user's held-out item."""
    ranks = []
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
            progress.update(len(targets))
    return torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.int64)


def evaluate(
    model: "Recommender", eval_set: EvalSet, *, mask_history: bool = True, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, float]:
    return summarize(rank_targets(model, eval_set, mask_history=mask_history), ks)
