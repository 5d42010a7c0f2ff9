"""A noisy popularity prior for DP sequence models.

Under DP-SGD a next-item model takes hundreds of noisy steps just to learn which items are
popular, and until then ranks below the popularity floor. One Gaussian release of
user-level item counts (sensitivity 1 per user, see ``noisy_counts``) is almost free in
epsilon at a large noise multiplier, and its log initialises the model's output bias
(``fedrec.models.item_vocabulary.bias_from_counts``): training starts at the floor and spends its budget on what popularity cannot say.

The release is accounted in the same ledger as the training that follows: one step at
sample rate 1, ``(noise, 1.0, 1)``, composed with DP-SGD by the accountant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.ledger import History, epsilon_of
from fedrec.privacy.noisy_counts import gaussian_noisy_counts, user_level_counts
from fedrec.privacy.secret_noise import SecretNoise
from fedrec.rundir import RunDir, write_torch

PRIOR_FILE = "popularity_prior.pt"  # in DIR/privacy/: the noisy item counts the run released (summed over clients)


def prior_segment(noise_multiplier: float | None) -> History:
    """The ledger entry a prior release adds (none without a prior)."""
    return [] if noise_multiplier is None else [(float(noise_multiplier), 1.0, 1)]


def check_prior_fits_target(train: TrainConfig) -> None:
    """The prior is planned into --target-epsilon; at delta <= 1e-5 (the default is smaller
    still) its epsilon is at least this much, so a target below it cannot work."""
    if train.target_epsilon is None or not train.prior_noise:
        return
    prior = epsilon_of(prior_segment(train.prior_noise), train.delta if train.delta is not None else 1e-5, train.accountant)
    if prior >= train.target_epsilon:
        raise ConfigError(
            f"the popularity prior alone (--prior-noise {train.prior_noise:g}) spends epsilon {prior:.2f} >= "
            f"--target-epsilon {train.target_epsilon:g}; raise --prior-noise (e.g. 10) or drop it with --prior-noise 0."
        )


def noisy_popularity(train: list[np.ndarray], n_items: int, noise_multiplier: float, *, noise: SecretNoise) -> np.ndarray:
    """User-level item counts plus N(0, noise^2) on every item (from ``noise``): a DP release on its own."""
    return gaussian_noisy_counts(user_level_counts(train, n_items), noise_multiplier, noise)


def released_prior_path(run_dir: str | Path) -> Path:
    return RunDir(Path(run_dir)).privacy / PRIOR_FILE


def save_released_prior(run_dir: str | Path, counts: np.ndarray) -> Path:
    """Keep the released noisy counts: under DP the audit and the release's fallback may
    read item popularity only from what was released and accounted."""
    return write_torch(released_prior_path(run_dir), torch.as_tensor(np.asarray(counts, dtype=np.float64)))


def released_prior(run_dir: str | Path) -> np.ndarray | None:
    """(n_items + 1,) the noisy item counts the run released, or None when it released none
    (no prior, or a run from before they were kept)."""
    path = released_prior_path(run_dir)
    return torch.load(path, weights_only=True).numpy() if path.exists() else None
