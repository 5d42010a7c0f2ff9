"""One federated client's local training in a round: plain epochs, or DP-SGD that continues
the client's privacy ledger and refuses to pass its budget.

The ledger file sits beside the client's private state (``<client>.privacy.json``), is
read before every round and written before the reply leaves, so a client restarted at
any point resumes from the epsilon it had really spent (a round it trained but never
reported is still counted: the accountant's history is conservative, never optimistic).
A round already on the ledger is refused: a client answers each round of a run once.
Sampling and noise come from a fresh secret keystream each round (SecretNoise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fedrec.config import FederationConfig, TrainConfig
from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError, FloorRefused, ModelError
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.budget import (
    epsilon_cap, ledger_file, open_ledger, refuse_answered_round, refuse_past_cap, refuse_past_lifetime,
)
from fedrec.privacy.canaries import Canaries, canary_file, load_canaries, save_canaries
from fedrec.privacy.dp_sgd import DPPlan, plan_dp
from fedrec.privacy.ledger import ClientLedger, save_ledger
from fedrec.privacy.popularity_prior import noisy_popularity
from fedrec.privacy.secret_noise import SecretNoise
from fedrec.training.loop import run_epoch
from fedrec.training.private import prior_release, privacy_mechanism, train_private_epochs


def train_local_epochs(model: TorchRecommender, split: LeaveOneOut, epochs: int, *, round_seed: int = 0,
                       optimizer_state: dict[int, Any] | None = None,
                       before_step: Callable[[], None] | None = None) -> tuple[float, dict[int, Any]]:
    """Plain local training, no validation: what a federated client does each round.
    Returns (mean loss of the last epoch, the optimizer's per-parameter state).
    ``optimizer_state`` (from an earlier round) continues the optimizer; the learning rate
    stays this round's."""
    optimizer = model.make_optimizer()
    if optimizer_state:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for index, values in optimizer_state.items():
            shapes = {tuple(v.shape) for v in values.values() if isinstance(v, torch.Tensor) and v.dim() > 0}
            if index >= len(params) or shapes - {tuple(params[index].shape)}:
                raise ModelError(
                    f"{model.name}: the saved optimizer state does not fit this model (parameter {index}); was the "
                    "client restarted with another model, dim or catalog? Move its .optimizer.pt file away to start fresh."
                )
        optimizer.load_state_dict({"state": optimizer_state, "param_groups": optimizer.state_dict()["param_groups"]})
    loss = float("nan")
    for epoch in range(epochs):
        batches, n_batches = model.batches(split, np.random.default_rng([model.config.seed, round_seed, epoch]))
        loss = run_epoch(model.net, batches, model.loss, optimizer, description=f"local epoch {epoch + 1}", total=n_batches,
                         before_step=before_step)
    model.net.eval()
    return loss, optimizer.state_dict()["state"]


def client_plan(model: TorchRecommender, split: LeaveOneOut, train: TrainConfig, federation: FederationConfig) -> DPPlan:
    """The same plan every round: the prior release (if the model starts from one) plus
    every planned round's local epochs end at the target epsilon."""
    records = len(model.private_samples(split))
    return plan_dp(train, records=records, planned_epochs=federation.rounds * federation.local_epochs, prefix=prior_release(model))


def _client_ledger(model: TorchRecommender, path: Path, client: str, plan: DPPlan, federation: FederationConfig, *,
                   run: str, round_number: int) -> ClientLedger:
    """The client's ledger on this run, refused when the run's whole plan would pass its lifetime cap."""
    ledger = open_ledger(path, client, plan, mechanism=privacy_mechanism(model), unit=model.privacy_unit + " within a client", run=run)
    planned = plan.history_after(prior_release(model), federation.rounds * federation.local_epochs)
    refuse_past_lifetime(ledger, path, planned, model.config.lifetime_epsilon, round_number=round_number)
    return ledger


def popularity_release(
    model: TorchRecommender, split: LeaveOneOut, train: TrainConfig, federation: FederationConfig,
    *, client: str, state_dir: Path | None, run: str = "",
) -> tuple[np.ndarray, ClientLedger]:
    """This client's noisy user-level item counts for the shared popularity prior,
    recorded in its ledger (as round 0) before they leave."""
    if state_dir is None:
        raise ConfigError("DP clients keep a privacy ledger on disk and this client has no state dir.")
    path = ledger_file(state_dir, client)
    plan = client_plan(model, split, train, federation)
    ledger = _client_ledger(model, path, client, plan, federation, run=run, round_number=0)
    refuse_answered_round(ledger, path, round_number=0)
    release = prior_release(model)
    ledger.record_round(0, [*ledger.history, *release])
    save_ledger(path, ledger)  # before anything leaves
    counts = noisy_popularity(split.train, model.n_items, release[0][0], noise=SecretNoise.fresh())
    return counts, ledger


def private_round(
    model: TorchRecommender, split: LeaveOneOut, train: TrainConfig, federation: FederationConfig,
    *, client: str, state_dir: Path | None, round_number: int, run: str = "", least_noise: float = 0.0,
) -> tuple[ClientLedger, float]:
    """Train one round under DP; returns (the updated ledger, mean loss).

    Raises BudgetExhausted (after recording the refusal in the ledger) when the round
    would take the client past its cap, FloorRefused when its noise is below ``least_noise``
    (the store's own floor).
    """
    if state_dir is None:
        raise ConfigError(
            "DP clients keep a privacy ledger on disk and this client has no state dir; start the "
            "SuperNode with --node-config \"state-dir='/path'\" (or a data-path, beside which it is kept)."
        )
    path = ledger_file(state_dir, client)
    plan = client_plan(model, split, train, federation)
    if plan.noise_multiplier < least_noise:
        raise FloorRefused(f"{client}: the run's plan trains with noise multiplier {plan.noise_multiplier:.4g}, below this "
                           f"store's floor {least_noise:g} (min-noise-multiplier in its node config); it takes no part.")
    ledger = _client_ledger(model, path, client, plan, federation, run=run, round_number=round_number)
    refuse_answered_round(ledger, path, round_number=round_number)
    refuse_past_cap(ledger, path, plan.epsilon_after(ledger.history, federation.local_epochs), epsilon_cap(train),
                    round_number=round_number)
    canaries_path = canary_file(state_dir, client)  # the privacy audit's canaries ride along (fedrec.privacy.canaries)
    canaries = load_canaries(canaries_path) or Canaries.fresh()
    history, loss = train_private_epochs(model, split, federation.local_epochs, plan, ledger.history,
                                         noise=SecretNoise.fresh(), round_number=round_number, canaries=canaries)
    ledger.record_round(round_number, history)
    save_ledger(path, ledger)
    save_canaries(canaries_path, canaries)
    return ledger, loss
