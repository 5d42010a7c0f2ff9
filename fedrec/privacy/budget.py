"""A federated client's privacy budget: where its ledger lives, its cap, and the refusal
raised instead of training past it (``fedrec.training.local.private_round`` spends it)."""

from __future__ import annotations

import re
from pathlib import Path

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError, FedrecError
from fedrec.privacy.dp_sgd import DPPlan
from fedrec.privacy.ledger import ClientLedger, History, epsilon_of, load_ledger, save_ledger


class BudgetExhausted(FedrecError):
    """The client would pass its max-epsilon by training this round, so it does not."""

    def __init__(self, message: str, ledger: ClientLedger) -> None:
        super().__init__(message)
        self.ledger = ledger


LEDGER_SUFFIX = ".privacy.json"  # a client's ledger beside its private state


def ledger_file(state_dir: Path, client: str) -> Path:
    return state_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', client)}{LEDGER_SUFFIX}"


def epsilon_cap(train: TrainConfig) -> float | None:
    """max-epsilon, or the target epsilon when only a target was given."""
    return train.max_epsilon if train.max_epsilon is not None else train.target_epsilon


def open_ledger(path: Path, client: str, plan: DPPlan, *, mechanism: str, unit: str, run: str = "") -> ClientLedger:
    """The client's ledger from disk, or a new one, on ``run`` (a ledger last used by another
    run keeps that run as an earlier one); refused if it accounts under another delta or
    accountant than this run's. ``plan`` is any plan with delta, accountant and max_grad_norm."""
    ledger = load_ledger(path) or ClientLedger(client, plan.accountant, plan.delta, plan.max_grad_norm, mechanism=mechanism, unit=unit)
    ledger.begin_run(run)
    if (ledger.delta, ledger.accountant) != (plan.delta, plan.accountant):
        raise ConfigError(
            f"{path} accounts this client at delta={ledger.delta}, accountant={ledger.accountant}, but the run now "
            f"asks delta={plan.delta}, accountant={plan.accountant}; epsilon can only be added up under one of them. "
            "Resume with the run's original --delta/--accountant."
        )
    return ledger


def refuse_past_cap(ledger: ClientLedger, path: Path, after: float, cap: float | None, *, round_number: int) -> None:
    """BudgetExhausted (the refusal recorded in the ledger) when this round would take the
    client's run epsilon to ``after``, past --max-epsilon (or the target)."""
    if cap is None or after <= cap * (1 + 1e-9):
        return
    _refuse(ledger, path, round_number, (
        f"{ledger.client} refuses round {round_number}: training it would raise epsilon from {ledger.epsilon:.3f} to "
        f"{after:.3f}, past max-epsilon {cap:g} (delta {ledger.delta:g}). Its privacy budget is spent; raise "
        "--max-epsilon only if a larger guarantee is acceptable."
    ))


def refuse_past_lifetime(ledger: ClientLedger, path: Path, planned: History, cap: float | None, *, round_number: int) -> None:
    """BudgetExhausted (the refusal recorded in the ledger) when this whole run, as planned,
    would take the client's customers past ``cap`` over every run the ledger has seen. Checked
    before every release, so a run over the cap is refused before it spends anything."""
    if cap is None:
        return
    earlier = ledger.earlier_history
    after = epsilon_of([*earlier, *planned], ledger.delta, ledger.accountant)
    if after <= cap * (1 + 1e-9):
        return
    _refuse(ledger, path, round_number, (
        f"{ledger.client} refuses this run: its earlier runs spent epsilon "
        f"{epsilon_of(earlier, ledger.delta, ledger.accountant):.3f} and this run's plan would take its customers' "
        f"lifetime epsilon to {after:.3f}, past --lifetime-epsilon {cap:g} (delta {ledger.delta:g}). Plan a smaller "
        "run (--target-epsilon), or raise the lifetime cap only if a larger lifetime guarantee is acceptable."
    ))


def refuse_answered_round(ledger: ClientLedger, path: Path, *, round_number: int) -> None:
    """BudgetExhausted (recorded) when this run already released round ``round_number``: a store
    answers each (run, round) once, since the difference of two answers to one round (at two
    models, or in two sums) would cancel whatever noise they share. A resumed server asks a
    new round number instead."""
    if any(r["round"] == round_number for r in ledger.rounds):
        _refuse(ledger, path, round_number, (
            f"{ledger.client} refuses round {round_number} of run {ledger.run or '-'}: it already answered that round, "
            "and a second answer to one round could be differenced against the first. A server asks each round "
            "number once (a resumed run continues after the last round it asked)."
        ))


def _refuse(ledger: ClientLedger, path: Path, round_number: int, reason: str) -> None:
    """The refusal on the client's record (the last one per round), then raised."""
    ledger.refused = [r for r in ledger.refused if r["round"] != round_number]
    ledger.refused.append({"round": round_number, "reason": reason})
    save_ledger(path, ledger)
    raise BudgetExhausted(reason, ledger)
