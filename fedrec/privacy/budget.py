"""One federated client's DP round: continue its ledger, refuse past its budget, train.

The ledger file sits beside the client's private state (``<client>.privacy.json``), is
read before every round and written before the reply leaves, so a client restarted at
any point resumes from the epsilon it had really spent (a round it trained but never
reported is still counted: the accountant's history is conservative, never optimistic).
"""

from __future__ import annotations

import re
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError, FedrecError
from fedrec.privacy.dp_sgd import DPPlan, plan_dp
from fedrec.privacy.ledger import ClientLedger, load_ledger, save_ledger
from fedrec.privacy.popularity_prior import noisy_popularity

if TYPE_CHECKING:
    from fedrec.data.split import LeaveOneOut
    from fedrec.models.torch_model import TorchRecommender


class BudgetExhausted(FedrecError):
    """The client would pass its max-epsilon by training this round, so it does not."""

    def __init__(self, message: str, ledger: ClientLedger) -> None:
        super().__init__(message)
        self.ledger = ledger


def ledger_file(state_dir: Path, client: str) -> Path:
    return state_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', client)}.privacy.json"


def epsilon_cap(train: TrainConfig) -> float | None:
    """max-epsilon, or the target epsilon when only a target was given."""
    return train.max_epsilon if train.max_epsilon is not None else train.target_epsilon


def client_plan(model: "TorchRecommender", split: "LeaveOneOut", train: TrainConfig, federation: FederationConfig) -> DPPlan:
    """The same plan every round: the prior release (if the model starts from one) plus
    every planned round's local epochs end at the target epsilon."""
    records = len(model.private_samples(split))
    return plan_dp(train, records=records, planned_epochs=federation.rounds * federation.local_epochs, prefix=model.prior_release())


def open_ledger(path: Path, client: str, plan: DPPlan, model: "TorchRecommender") -> ClientLedger:
    ledger = load_ledger(path) or ClientLedger(
        client, plan.accountant, plan.delta, plan.max_grad_norm, mechanism=model.privacy_mechanism(),
        unit=model.privacy_unit + " within a client",
    )
    if (ledger.delta, ledger.accountant) != (plan.delta, plan.accountant):
        raise ConfigError(
            f"{path} accounts this client at delta={ledger.delta}, accountant={ledger.accountant}, but the run now "
            f"asks delta={plan.delta}, accountant={plan.accountant}; epsilon can only be added up under one of them. "
            "Resume with the run's original --delta/--accountant."
        )
    return ledger


def popularity_release(
    model: "TorchRecommender", split: "LeaveOneOut", train: TrainConfig, federation: FederationConfig,
    *, client: str, state_dir: Path | None, seed: int,
) -> tuple[np.ndarray, ClientLedger]:
    """This client's noisy user-level item counts for the shared popularity prior,
    recorded in its ledger (as round 0) before they leave."""
    if state_dir is None:
        raise ConfigError("DP clients keep a privacy ledger on disk and this client has no state dir.")
    path = ledger_file(state_dir, client)
    plan = client_plan(model, split, train, federation)
    ledger = open_ledger(path, client, plan, model)
    release = model.prior_release()
    with warnings.catch_warnings():  # the server said it once for the whole run (check_privacy_modes)
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        counts = noisy_popularity(split.train, model.n_items, release[0][0], seed=seed, secure_mode=train.secure_mode)
    ledger.record_round(0, [*ledger.history, *release])
    save_ledger(path, ledger)
    return counts, ledger


def private_round(
    model: "TorchRecommender", split: "LeaveOneOut", train: TrainConfig, federation: FederationConfig,
    *, client: str, state_dir: Path | None, round_number: int,
) -> tuple[ClientLedger, float]:
    """Train one round under DP; returns (the updated ledger, mean loss).

    Raises BudgetExhausted (after recording the refusal in the ledger) when the round
    would take the client past its cap.
    """
    if state_dir is None:
        raise ConfigError(
            "DP clients keep a privacy ledger on disk and this client has no state dir; start the "
            "SuperNode with --node-config \"state-dir='/path'\" (or a data-path, beside which it is kept)."
        )
    path = ledger_file(state_dir, client)
    plan = client_plan(model, split, train, federation)
    ledger = open_ledger(path, client, plan, model)
    cap = epsilon_cap(train)
    if cap is not None:
        after = plan.epsilon_after(ledger.history, federation.local_epochs)
        if after > cap * (1 + 1e-9):
            reason = (
                f"{client} refuses round {round_number}: training it would raise epsilon from "
                f"{ledger.epsilon:.3f} to {after:.3f}, past max-epsilon {cap:g} (delta {plan.delta:g}). "
                "Its privacy budget is spent; raise --max-epsilon only if a larger guarantee is acceptable."
            )
            ledger.refused = [r for r in ledger.refused if r["round"] != round_number]
            ledger.refused.append({"round": round_number, "reason": reason})
            save_ledger(path, ledger)
            raise BudgetExhausted(reason, ledger)
    seed = zlib.crc32(f"{train.seed}/{client}/{round_number}".encode())
    history, loss = model.train_private_epochs(split, federation.local_epochs, plan, ledger.history, seed=seed)
    ledger.record_round(round_number, history)
    save_ledger(path, ledger)
    return ledger, loss
