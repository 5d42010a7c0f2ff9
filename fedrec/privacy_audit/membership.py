"""Membership inference on the released model: was this customer in training?

The attacker holds the released model (what serving loads) and a customer's history, and
flags the customers whose own items the model predicts unusually well (the loss attack of
Yeom et al. 2018, scored as Carlini et al. 2022 ask: ROC AUC and TPR at a low FPR). Members
are customers who trained; non-members are the customers ``--audit-holdout`` kept out of
training, drawn at random per customer, so the two groups differ only by training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from fedrec.models.base import Recommender
from fedrec.privacy.attack_metrics import roc_auc, split_epsilon_lower_bound, tpr_at_fpr

RECENT_TARGETS = 10  # sequence models: the customer's last 10 next-item predictions (what DP training scores)
CHUNK = 256  # histories scored at once: (CHUNK x items) logits


@dataclass(frozen=True)
class MembershipResult:
    members: int
    non_members: int
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_0_1pct_fpr: float
    epsilon_lower_bound: float  # at 95% confidence, threshold chosen on one half, counted on the other
    bound_tpr: float
    bound_fpr: float

    def to_dict(self) -> dict:
        return asdict(self)


def membership_scores(model: Recommender, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Mean log-likelihood the model gives each customer's own train items (higher: more
    likely a member). Sequence models: each of the last ``RECENT_TARGETS`` items given the
    items before it (histories need 2 items or more). MF: the customer's items under a user
    vector folded in from them with the released item side frozen (the release holds no user
    vectors)."""
    scores = np.empty(len(histories))
    for start in range(0, len(histories), CHUNK):
        chunk = [np.asarray(h, dtype=np.int64) for h in histories[start : start + CHUNK]]
        scores[start : start + len(chunk)] = _folded_in(model, chunk) if hasattr(model, "fold_in") else _next_items(model, chunk)
    return scores


def _log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.clone()
    logits[:, 0] = float("-inf")  # padding is no item
    return torch.log_softmax(logits, dim=1)


def _folded_in(model, histories: list[np.ndarray]) -> np.ndarray:
    log_p = _log_probabilities(model.score_folded_in(histories))
    return np.array([float(log_p[row, torch.from_numpy(h)].mean()) for row, h in enumerate(histories)])


def _next_items(model: Recommender, histories: list[np.ndarray]) -> np.ndarray:
    prefixes, targets, owners = [], [], []
    for owner, history in enumerate(histories):
        for position in range(max(1, len(history) - RECENT_TARGETS), len(history)):
            prefixes.append(history[:position])
            targets.append(int(history[position]))
            owners.append(owner)
    log_p = _log_probabilities(model.score(np.zeros(len(prefixes), dtype=np.int64), prefixes))
    picked = log_p[torch.arange(len(targets)), torch.tensor(targets)].numpy()
    counts = np.bincount(owners, minlength=len(histories))
    return np.bincount(owners, weights=picked, minlength=len(histories)) / np.maximum(counts, 1)


def membership_attack(member_scores: np.ndarray, non_member_scores: np.ndarray, *, delta: float, seed: int) -> MembershipResult:
    """The attack's figures: AUC, TPR at 1% and 0.1% FPR, and the epsilon lower bound at ``delta``."""
    bound = split_epsilon_lower_bound(member_scores, non_member_scores, delta=delta, seed=seed)
    return MembershipResult(
        members=len(member_scores), non_members=len(non_member_scores), auc=roc_auc(member_scores, non_member_scores),
        tpr_at_1pct_fpr=tpr_at_fpr(member_scores, non_member_scores, 0.01),
        tpr_at_0_1pct_fpr=tpr_at_fpr(member_scores, non_member_scores, 0.001),
        epsilon_lower_bound=bound.epsilon, bound_tpr=bound.tpr, bound_fpr=bound.fpr,
    )
