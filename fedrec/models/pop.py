"""Popularity: every user gets the most-interacted items. The floor any model must beat.

Under ``--dp`` the training layer fits it from one Gaussian release of user-level counts
instead (``fedrec.training.private.fit_noisy_counts``): the floor any DP model must beat at
the same epsilon.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from fedrec.data.split import LeaveOneOut
from fedrec.models.base import FitResult, Recommender, check_fitted
from fedrec.models.registry import register_model


@register_model
class Popularity(Recommender):
    name = "pop"

    counts: torch.Tensor | None = None  # (n_items + 1,) training interactions per item (or their DP release)

    def fit(self, split: LeaveOneOut) -> FitResult:
        flat = np.concatenate(split.train) if split.train else np.empty(0, dtype=np.int64)
        self.fit_counts(torch.from_numpy(np.bincount(flat, minlength=self.n_items + 1).astype(np.float32)))
        return FitResult(epochs_run=1, best_epoch=1)

    def fit_counts(self, counts: torch.Tensor) -> None:
        """Rank by these (n_items + 1,) counts: exact, or a DP release of them."""
        self.counts = counts

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        check_fitted(self, self.counts is not None)
        return self.counts.unsqueeze(0).expand(len(histories), -1).clone()

    def state(self) -> dict[str, torch.Tensor]:
        check_fitted(self, self.counts is not None)
        return {"counts": self.counts}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.counts = state["counts"]
