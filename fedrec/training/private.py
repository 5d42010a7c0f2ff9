"""Private training of a model: DP-SGD for the neural ones, one noisy release of counts for
popularity. The bridge between a model (which says what a per-user sample and loss are) and
the DP engine in ``fedrec.privacy`` (which knows no model class).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.evaluation import evaluate
from fedrec.models.base import FitResult
from fedrec.models.pop import Popularity
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.canaries import Canaries
from fedrec.privacy.dp_sgd import DPPlan, plan_dp, train_private
from fedrec.privacy.ledger import ClientLedger, History, delta_for
from fedrec.privacy.noisy_counts import gaussian_noisy_counts, noise_for_epsilon, user_level_counts
from fedrec.privacy.opacus_layers import make_private_layers
from fedrec.privacy.secret_noise import SecretNoise
from fedrec.privacy.popularity_prior import noisy_popularity, prior_segment
from fedrec.progress import time_left

log = logging.getLogger("fedrec.train")

SGD_MECHANISM = "dp-sgd (opacus, poisson sampling, ghost clipping)"


def prior_release(model: TorchRecommender) -> History:
    """The ledger entry of the popularity prior this model starts DP training from (if any)."""
    return prior_segment(model.config.prior_noise) if model.uses_popularity_prior and model.config.prior_noise else []


def privacy_mechanism(model: TorchRecommender) -> str:
    prior = " after one gaussian release of item counts (popularity prior)" if prior_release(model) else ""
    return SGD_MECHANISM + prior


def train_private_epochs(model: TorchRecommender, split: LeaveOneOut, epochs: int, plan: DPPlan, history: History, *,
                         noise: SecretNoise, round_number: int = 0, after_epoch: Any = None,
                         canaries: Canaries | None = None) -> tuple[History, float]:
    """``epochs`` of DP-SGD continuing ``history``, sampled and noised from ``noise`` (with
    ``canaries`` along); returns (the accountant's history, mean loss)."""
    model.prepare_private(split)
    make_private_layers(model.net)  # layers Opacus refuses (nn.LSTM) become ones it accepts, same weights
    return train_private(model, split, plan, epochs=epochs, history=history, noise=noise, round_number=round_number,
                         after_epoch=after_epoch, canaries=canaries)


def fit_private(model: TorchRecommender, split: LeaveOneOut) -> tuple[FitResult, ClientLedger]:
    """Centralised DP training for ``epochs`` epochs (no early stopping: every epoch is
    planned into the noise); the final weights are kept, so no choice is made on
    validation data outside the privacy accounting."""
    config = model.config
    noise = SecretNoise.fresh()  # this process's secret: --seed decides initialisation and batches, never the noise
    records = len(model.private_samples(split))
    prior = prior_release(model)
    plan = plan_dp(config, records=records, planned_epochs=config.epochs, prefix=prior)
    ledger = ClientLedger("central", plan.accountant, plan.delta, plan.max_grad_norm,
                          mechanism=privacy_mechanism(model), unit=model.privacy_unit)
    result = FitResult(stopped_because=f"trained the {config.epochs} planned DP epochs")
    if prior:
        result.released_popularity = noisy_popularity(split.train, model.n_items, prior[0][0], noise=noise)
        model.apply_popularity_prior(result.released_popularity)
        ledger.record_round(0, prior)  # epoch 0: the popularity release
    started = time.perf_counter()

    def after_epoch(epoch: int, loss: float, history: History) -> None:
        ledger.record_round(epoch, history)
        valid = evaluate(model, split.valid, mask_history=config.mask_history, ks=(10,))["hr@10"]
        result.history.append({"epoch": epoch, "loss": loss, "valid_hr@10": valid, "epsilon": ledger.epsilon,
                               "seconds": time.perf_counter() - started})
        left = time_left(time.perf_counter() - started, epoch, config.epochs)
        log.info("DP epoch %d/%d loss %.4f valid HR@10 %.4f epsilon %.3f (delta %.1e, noise %.3f, q %.4f)%s",
                 epoch, config.epochs, loss, valid, ledger.epsilon, plan.delta, plan.noise_multiplier, plan.sample_rate,
                 f", {left}" if left else "")

    train_private_epochs(model, split, config.epochs, plan, prior, noise=noise, round_number=1, after_epoch=after_epoch)
    result.epochs_run = result.best_epoch = config.epochs
    result.best_valid_hr10 = result.history[-1]["valid_hr@10"] if result.history else None
    return result, ledger


def fit_noisy_counts(model: Popularity, split: LeaveOneOut) -> tuple[FitResult, ClientLedger]:
    """Popularity under DP: one Gaussian release of the user-level counts, accounted before
    anything is drawn."""
    config = model.config
    delta = delta_for(config.delta, split.n_users)
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
    clean = user_level_counts(split.train, model.n_items, max_items_per_user=None)
    noisy = gaussian_noisy_counts(clean, sigma, SecretNoise.fresh())
    model.fit_counts(torch.from_numpy(np.asarray(noisy).astype(np.float32)))
    return FitResult(epochs_run=1, best_epoch=1, released_popularity=np.asarray(noisy, dtype=np.float64)), ledger
