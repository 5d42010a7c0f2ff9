"""Popularity: every user gets the most-interacted items. The floor any model must beat.

With ``dp`` it releases user-level counts through the Gaussian mechanism instead
(``fedrec.privacy.noisy_counts``): the floor any DP model must beat at the same epsilon.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.models.base import FitResult, Recommender, check_fitted
from fedrec.models.registry import register_model
from fedrec.privacy.ledger import ClientLedger, default_delta
from fedrec.privacy.noisy_counts import gaussian_noisy_counts, noise_for_epsilon, noise_generator, user_level_counts


@register_model
class Popularity(Recommender):
    name = "pop"

    counts: torch.Tensor | None = None  # (n_items + 1,) training interactions per item
    privacy_ledger: ClientLedger | None = None  # set by a DP fit: what releasing ``counts`` cost

    def fit(self, split: LeaveOneOut) -> FitResult:
        if self.config.dp:
            self.counts = torch.from_numpy(self._private_counts(split).astype(np.float32))
        else:
            flat = np.concatenate(split.train) if split.train else np.empty(0, dtype=np.int64)
            self.counts = torch.from_numpy(np.bincount(flat, minlength=self.n_items + 1).astype(np.float32))
        return FitResult(epochs_run=1, best_epoch=1)

    def _private_counts(self, split: LeaveOneOut) -> np.ndarray:
        """One Gaussian release of the user-level counts, accounted before anything is drawn."""
        config = self.config
        delta = config.delta if config.delta is not None else default_delta(split.n_users)
        sigma = config.noise_multiplier
        if sigma is None:
            sigma = noise_for_epsilon(config.target_epsilon, delta, config.accountant)
        ledger = ClientLedger(
            client="central", accountant=config.accountant, delta=delta, max_grad_norm=1.0,
            mechanism="gaussian-counts", unit="user (their set of distinct train items)",
        )
        ledger.record_round(1, [(sigma, 1.0, 1)])
        if config.max_epsilon is not None and ledger.epsilon > config.max_epsilon:
            raise ConfigError(
                f"pop's noisy counts at noise_multiplier={sigma:g} would spend epsilon {ledger.epsilon:.3g} "
                f"> max_epsilon={config.max_epsilon:g}; raise --noise-multiplier or give --target-epsilon instead."
            )
        clean = user_level_counts(split.train, self.n_items, max_items_per_user=None)
        rng = noise_generator(config.seed, secure_mode=config.secure_mode)
        self.privacy_ledger = ledger
        return gaussian_noisy_counts(clean, sigma, rng, secure_mode=config.secure_mode)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        check_fitted(self, self.counts is not None)
        return self.counts.unsqueeze(0).expand(len(histories), -1).clone()

    def state(self) -> dict[str, torch.Tensor]:
        check_fitted(self, self.counts is not None)
        return {"counts": self.counts}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.counts = state["counts"]
