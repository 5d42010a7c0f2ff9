"""A store's part of a distributed DP run (``--dp distributed``; fedrec.privacy.distributed_dp):
its noise share on the popularity prior before round 1, then each round the clipped gradient
sum of a Poisson sample of its customers plus its noise share.

The store's ledger records the federation's mechanism (the full noise, the run's sample
rate): that is what its customers are protected by, and what their lifetime epsilon adds up.
It is written before the share leaves, and a store refuses (``BudgetExhausted``) a release
past --max-epsilon, or a run whose whole plan would pass --lifetime-epsilon.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.budget import epsilon_cap, ledger_file, open_ledger, refuse_past_cap, refuse_past_lifetime
from fedrec.privacy.distributed_dp import MECHANISM, UNIT, DistributedPlan, record_prior, record_round
from fedrec.privacy.dp_sgd import noisy_gradient_sum
from fedrec.privacy.ledger import ClientLedger, epsilon_of, save_ledger
from fedrec.privacy.popularity_prior import noisy_popularity


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


def _fresh_release(ledger: ClientLedger, round_number: int, secure_mode: bool) -> bool:
    """Whether this release is new to the ledger: a round asked again (a restarted store)
    draws the same sample and noise from its seed, so it is the same release, accounted once;
    under --secure-mode the noise is fresh, so it counts again."""
    return secure_mode or not any(r["round"] == round_number for r in ledger.rounds)


def prior_share(model: TorchRecommender, split: LeaveOneOut, plan: DistributedPlan, *, client: str,
                state_dir: Path | None, run: str, seed: int) -> tuple[np.ndarray, ClientLedger]:
    """User-level item counts plus this store's share of the prior's noise, recorded first."""
    config = model.config
    ledger, path = _store_ledger(plan, client=client, state_dir=state_dir, run=run, lifetime_cap=config.lifetime_epsilon,
                                 round_number=0)
    if _fresh_release(ledger, 0, config.secure_mode):
        record_prior(ledger, plan)
        save_ledger(path, ledger)
    with warnings.catch_warnings():  # the server said it once for the whole run (check_privacy_modes)
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        counts = noisy_popularity(split.train, model.n_items, plan.prior_share, seed=seed, secure_mode=config.secure_mode)
    return counts, ledger


def gradient_share(model: TorchRecommender, split: LeaveOneOut, plan: DistributedPlan, *, client: str,
                   state_dir: Path | None, run: str, round_number: int, seed: int) -> tuple[dict[str, torch.Tensor], ClientLedger]:
    """This round's clipped gradient sum plus noise share, by shared parameter name."""
    config = model.config
    ledger, path = _store_ledger(plan, client=client, state_dir=state_dir, run=run, lifetime_cap=config.lifetime_epsilon,
                                 round_number=round_number)
    if _fresh_release(ledger, round_number, config.secure_mode):
        after = epsilon_of([*ledger.history, (plan.noise_multiplier, plan.sample_rate, 1)], ledger.delta, ledger.accountant)
        refuse_past_cap(ledger, path, after, epsilon_cap(config), round_number=round_number)
        record_round(ledger, round_number, plan)
        save_ledger(path, ledger)  # before anything leaves
    model.prepare_private(split)
    noisy_gradient_sum(model, split, sample_rate=plan.sample_rate, max_grad_norm=plan.max_grad_norm,
                       noise_std=plan.noise_share_std, seed=seed, secure_mode=config.secure_mode)
    return {name: parameter.grad.detach().clone() for name, parameter in model.shared_parameters().items()}, ledger
