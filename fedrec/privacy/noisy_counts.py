"""Differentially private item counts: the Gaussian mechanism on user-level popularity.

Popularity is nearly free to release privately, so it is the floor any DP model must beat
at the same epsilon. The unit of privacy is one user (add/remove one user's whole train
history), the same unit the DP-SGD models use, so the epsilons are comparable.

One Gaussian release with L2 sensitivity 1 and noise std ``sigma`` is exactly one Opacus
step with noise multiplier ``sigma`` and sample rate 1.0: its ledger history is
``[(sigma, 1.0, 1)]`` and any Opacus accountant prices it.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from opacus.accountants.utils import get_noise_multiplier

from fedrec.errors import ConfigError
from fedrec.privacy.secret_noise import Purpose, SecretNoise

def user_level_counts(train: list[np.ndarray], n_items: int, max_items_per_user: int | None = None) -> np.ndarray:
    """(n_items + 1,) float64 counts where each user adds a vector of L2 norm exactly 1.

    A user adds 1/sqrt(k) to each of their k distinct items (repeats count once). Raw counts
    have unbounded sensitivity (one heavy user can move an item by thousands); here adding
    or removing one user moves the vector by at most 1 in L2, whatever their history, and a
    heavy user spreads the same unit of weight thinner instead of dominating the ranking.
    ``max_items_per_user`` keeps only a user's most recent distinct items, the ones closest
    to what they do next, so long histories do not dilute each item to nothing.
    """
    if max_items_per_user is not None and max_items_per_user < 1:
        raise ConfigError(f"max_items_per_user={max_items_per_user} must be >= 1 (or None for all items).")
    counts = np.zeros(n_items + 1, dtype=np.float64)
    for sequence in train:
        # Distinct items, most recent occurrence last, so the cap keeps the latest ones.
        reversed_items = np.asarray(sequence, dtype=np.int64)[::-1]
        _, first_seen = np.unique(reversed_items, return_index=True)
        distinct = reversed_items[np.sort(first_seen)]  # most recent first
        if max_items_per_user is not None:
            distinct = distinct[:max_items_per_user]
        if len(distinct):
            counts[distinct] += 1.0 / np.sqrt(len(distinct))
    return counts


def gaussian_noisy_counts(counts: np.ndarray, noise_multiplier: float, noise: SecretNoise, *,
                          round_number: int = 0) -> np.ndarray:
    """Counts + N(0, noise_multiplier^2) on EVERY item, zero counts included, drawn from the
    releasing party's secret keystream (``SecretNoise``; Opacus' secure-mode construction).

    Noising only nonzero items would reveal which items anyone interacted with. Column 0 is
    padding, not an item: it stays 0. Negative results are kept; only their order matters.
    """
    return checked_noisy_counts(counts, noise_multiplier, noise, round_number=round_number, check=0)[0]


def checked_noisy_counts(counts: np.ndarray, noise_multiplier: float, noise: SecretNoise, *, round_number: int = 0,
                         check: int) -> tuple[np.ndarray, np.ndarray]:
    """``gaussian_noisy_counts`` and ``check`` noise-only coordinates from the same draw
    (fedrec.privacy.noise_check: what lets the server test a sum of such releases)."""
    if not 0 <= noise_multiplier < float("inf"):
        raise ConfigError(f"noise_multiplier={noise_multiplier} must be a finite number >= 0.")
    noisy = np.array(counts, dtype=np.float64)
    drawn = noise.gaussian_like(torch.zeros(len(noisy) - 1 + check, dtype=torch.float64), noise_multiplier,
                                purpose=Purpose.COUNT_NOISE, round_number=round_number, step=0).numpy()
    noisy[1:] += drawn[:len(noisy) - 1]
    return noisy, drawn[len(noisy) - 1:]


def noise_for_epsilon(target_epsilon: float, delta: float, accountant: str = "rdp") -> float:
    """The smallest noise multiplier whose single release costs at most ``target_epsilon``."""
    try:
        with warnings.catch_warnings():
            # The search probes extreme sigmas where RDP's alpha grid is too short; harmless here.
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon, target_delta=delta, sample_rate=1.0, steps=1,
                    accountant=accountant, epsilon_tolerance=0.005 * target_epsilon,
                )
            )
    except (ValueError, RuntimeError) as err:
        hint = " (try --accountant prv, which is tighter for small epsilons)" if accountant == "rdp" else ""
        raise ConfigError(
            f"cannot reach target_epsilon={target_epsilon} at delta={delta:g} with the {accountant} accountant "
            f"({err}); choose another --target-epsilon{hint}."
        ) from None
