"""A federated client's privacy budget: where its ledger lives, its cap, and the refusal
raised instead of training past it (``fedrec.training.local.private_round`` spends it)."""

from __future__ import annotations

import re
from pathlib import Path

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError, FedrecError
from fedrec.privacy.dp_sgd import DPPlan
from fedrec.privacy.ledger import ClientLedger, load_ledger


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


def open_ledger(path: Path, client: str, plan: DPPlan, *, mechanism: str, unit: str) -> ClientLedger:
    """The client's ledger from disk, or a new one; refused if it accounts under another
    delta or accountant than this run's."""
    ledger = load_ledger(path) or ClientLedger(client, plan.accountant, plan.delta, plan.max_grad_norm, mechanism=mechanism, unit=unit)
    if (ledger.delta, ledger.accountant) != (plan.delta, plan.accountant):
        raise ConfigError(
            f"{path} accounts this client at delta={ledger.delta}, accountant={ledger.accountant}, but the run now "
            f"asks delta={plan.delta}, accountant={plan.accountant}; epsilon can only be added up under one of them. "
            "Resume with the run's original --delta/--accountant."
        )
    return ledger
