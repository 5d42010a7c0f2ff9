"""A store's part of a distributed DP run (``--dp distributed``; fedrec.privacy.distributed_dp):
its noise share on the popularity prior before round 1, then each round the clipped gradient
sum of a Poisson sample of its customers plus its noise share.

The store's ledger records the federation's mechanism (the full noise, the run's sample
rate): that is what its customers are protected by, and what their lifetime epsilon adds up.
It is written before the share leaves, and a store refuses (``BudgetExhausted``) a release
past --max-epsilon, a run whose whole plan would pass --lifetime-epsilon, and a round it has
already answered. Its sample and noise come from a fresh secret keystream each release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.budget import (
    epsilon_cap, ledger_file, open_ledger, refuse_answered_round, refuse_past_cap, refuse_past_lifetime,
)
from fedrec.privacy.distributed_dp import MECHANISM, UNIT, DistributedPlan, record_prior, record_round
from fedrec.privacy.dp_sgd import noisy_gradient_sum
from fedrec.privacy.ledger import ClientLedger, epsilon_of, save_ledger
from fedrec.privacy.noise_check import CHECK_COORDINATES, CHECK_KEY
from fedrec.privacy.noisy_counts import checked_noisy_counts, user_level_counts
from fedrec.privacy.opacus_layers import make_private_layers
from fedrec.privacy.secret_noise import SecretNoise


def _store_ledger(plan: DistributedPlan, *, client: str, state_dir: Path | None, run: str, lifetime_cap: float | None,
                  round_number: int) -> tuple[ClientLedger, Path]:
    if state_dir is None:
        raise ConfigError(
            "a DP store keeps its privacy ledger on disk and this one has no state dir; start the SuperNode with "
            "--node-config \"state-dir='/path'\" (or a data-path, beside which it is kept)."
        )
    path = ledger_file(state_dir, client)
    ledger = open_ledger(path, client, plan, mechanism=MECHANISM, unit=UNIT, run=run)
    refuse_past_lifetime(ledger, path, plan.history(plan.rounds), lifetime_cap, round_number=round_number)
    return ledger, path


def prior_share(model: TorchRecommender, split: LeaveOneOut, plan: DistributedPlan, *, client: str,
                state_dir: Path | None, run: str) -> tuple[np.ndarray, ClientLedger]:
    """User-level item counts plus this store's secret share of the prior's noise, recorded
    first, followed by CHECK_COORDINATES noise-only check coordinates (noise_check)."""
    config = model.config
    ledger, path = _store_ledger(plan, client=client, state_dir=state_dir, run=run, lifetime_cap=config.lifetime_epsilon,
                                 round_number=0)
    refuse_answered_round(ledger, path, round_number=0)
    record_prior(ledger, plan)  # round 0 on the ledger: a second ask is refused
    save_ledger(path, ledger)  # before anything leaves
    counts, check = checked_noisy_counts(user_level_counts(split.train, model.n_items), plan.prior_share,
                                         SecretNoise.fresh(), check=CHECK_COORDINATES)
    return np.concatenate([counts, check]), ledger


def gradient_share(model: TorchRecommender, split: LeaveOneOut, plan: DistributedPlan, *, client: str,
                   state_dir: Path | None, run: str, round_number: int) -> tuple[dict[str, torch.Tensor], ClientLedger]:
    """This round's clipped gradient sum plus secret noise share, by shared parameter name, and
    under CHECK_KEY the share's noise-only check coordinates (fedrec.privacy.noise_check)."""
    config = model.config
    ledger, path = _store_ledger(plan, client=client, state_dir=state_dir, run=run, lifetime_cap=config.lifetime_epsilon,
                                 round_number=round_number)
    refuse_answered_round(ledger, path, round_number=round_number)
    after = epsilon_of([*ledger.history, (plan.noise_multiplier, plan.sample_rate, 1)], ledger.delta, ledger.accountant)
    refuse_past_cap(ledger, path, after, epsilon_cap(config), round_number=round_number)
    record_round(ledger, round_number, plan)
    save_ledger(path, ledger)  # before anything leaves
    model.prepare_private(split)
    make_private_layers(model.net)  # layers Opacus refuses (nn.LSTM) become ones it accepts, same weights
    _, _, check = noisy_gradient_sum(model, split, sample_rate=plan.sample_rate, max_grad_norm=plan.max_grad_norm,
                                     noise_std=plan.noise_share_std, noise=SecretNoise.fresh(), round_number=round_number,
                                     check=CHECK_COORDINATES)
    shares = {name: parameter.grad.detach().clone() for name, parameter in model.shared_parameters().items()}
    return {**shares, CHECK_KEY: check}, ledger
