"""The privacy ledger: every DP release a client (or a central run) has made, in the form
Opacus accountants keep it, so epsilon always covers the whole run.

A client's ledger lives beside its private state and is reloaded into a fresh accountant
before each round: a restarted client never starts again from epsilon 0. The server keeps
a run-level copy (``RUN_LEDGER`` in the run directory) built from what clients report
each round; the privacy report is computed from it.

``history`` is ``[(noise_multiplier, sample_rate, steps), ...]`` exactly as in
``opacus.accountants.RDPAccountant.history``, for the current run (``run``). A store that keeps
its state folder keeps its ledger across runs: a new run moves the finished one's history to
``earlier_runs`` (never merged into it, so each run's epsilon stays readable), and the lifetime
epsilon composes them all.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from opacus.accountants import RDPAccountant, create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis

from fedrec.errors import ConfigError
from fedrec.rundir import PRIVACY, write_json

RUN_LEDGER = Path(PRIVACY) / "ledger.json"

History = list[tuple[float, float, int]]


def default_delta(records: int) -> float:
    """min(1e-5, 1 / (10 x records)): delta well below 1/records, as the DP literature asks."""
    return min(1e-5, 1.0 / (10 * max(1, records)))


def delta_for(given: float | None, records: int) -> float:
    """The run's delta: ``given`` (a user's --delta) when it is below 1/records, else
    ``default_delta``; a delta of 1/N or more lets a mechanism publish one record in the clear."""
    if given is None:
        return default_delta(records)
    if not 0.0 < given < 1.0 / max(1, records):
        raise ConfigError(
            f"--delta {given:g} is not below 1/N = 1/{records} ({1.0 / max(1, records):.1e}), N the customers it protects: "
            f"at that delta one customer's data may be published outright. Give at most {default_delta(records):.1e}, or "
            "leave --delta out for that default."
        )
    return float(given)


def epsilon_of(history: History, delta: float, accountant: str = "rdp") -> float:
    """Epsilon of a history under a fresh Opacus accountant (0 for an empty history)."""
    return _epsilon(tuple((float(n), float(q), int(s)) for n, q, s in history), float(delta), accountant)


@functools.lru_cache(maxsize=4096)
def _epsilon(history: tuple[tuple[float, float, int], ...], delta: float, accountant: str) -> float:
    """Cached: the RDP analysis costs ~0.1 s a history entry, and a round asks the same question
    several times. RDP histories take ``_rdp_epsilon``, the same arithmetic without recomputing a
    step's RDP for every new step count (a distributed DP store asks it after every round)."""
    if not history:
        return 0.0
    with warnings.catch_warnings():
        # "Optimal order is the largest (smallest) alpha": the bound is valid, only not the tightest.
        warnings.filterwarnings("ignore", message="Optimal order is the (largest|smallest) alpha")
        if accountant == "rdp":
            return _rdp_epsilon(history, delta)
        fresh = create_accountant(accountant)
        fresh.history = list(history)
        return float(fresh.get_epsilon(delta=delta))


def _rdp_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Opacus' ``RDPAccountant.get_epsilon`` step by step (its orders, ``compute_rdp`` and
    ``get_privacy_spent``): ``compute_rdp`` is one step's RDP times the steps, so the step's RDP is
    cached per (noise, rate). Bit-identical to a fresh accountant (tests/privacy/test_budget.py)."""
    rdp = sum([_one_step_rdp(float(q), float(n)) * int(s) for n, q, s in history])
    epsilon, _ = rdp_analysis.get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(epsilon)


@functools.lru_cache(maxsize=1024)
def _one_step_rdp(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    return rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                                    orders=RDPAccountant.DEFAULT_ALPHAS)


@dataclass
class ClientLedger:
    """One client's DP history. ``rounds`` says what each round added, for the report."""

    client: str
    accountant: str
    delta: float
    max_grad_norm: float
    mechanism: str = "dp-sgd"
    unit: str = ""
    history: History = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # {"round", "epsilon", "steps", "noise_multiplier", "sample_rate"}
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"round", "reason"}
    run: str = ""  # the run ``history`` belongs to
    earlier_runs: list[dict[str, Any]] = field(default_factory=list)  # {"run", "history", "epsilon"}, oldest first

    @property
    def epsilon(self) -> float:
        """This run's epsilon."""
        return epsilon_of(self.history, self.delta, self.accountant)

    @property
    def earlier_history(self) -> History:
        """Every earlier run's history, in order."""
        return [(float(n), float(q), int(s)) for run in self.earlier_runs for n, q, s in run["history"]]

    @property
    def lifetime_history(self) -> History:
        return self.earlier_history + list(self.history)

    @property
    def lifetime_epsilon(self) -> float:
        """Every run with this ledger, composed."""
        return epsilon_of(self.lifetime_history, self.delta, self.accountant)

    def begin_run(self, run: str) -> None:
        """Continue ``run``, or close the run recorded so far and start ``run`` with an empty history."""
        if run == self.run:
            return
        if self.history:
            self.earlier_runs.append({"run": self.run, "history": [list(h) for h in self.history], "epsilon": self.epsilon})
        self.run, self.history, self.rounds, self.refused = run, [], [], []

    @property
    def steps(self) -> int:
        return sum(int(s) for _, _, s in self.history)

    def record_round(self, round_number: int, history: History) -> None:
        """Replace the history with the accountant's after a round, and note what it added."""
        before = self.steps
        self.history = [(float(n), float(q), int(s)) for n, q, s in history]
        last_noise, last_rate, _ = self.history[-1] if self.history else (math.nan, math.nan, 0)
        self.rounds = [r for r in self.rounds if r["round"] != round_number]
        self.rounds.append(
            {"round": round_number, "epsilon": self.epsilon, "steps": self.steps - before,
             "noise_multiplier": last_noise, "sample_rate": last_rate}
        )

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["history"] = [list(h) for h in self.history]
        document["epsilon"] = self.epsilon
        document["lifetime_epsilon"] = self.lifetime_epsilon
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> "ClientLedger":
        known = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        ledger = cls(**known)
        ledger.history = [(float(n), float(q), int(s)) for n, q, s in ledger.history]
        return ledger


def record_steps(ledger: ClientLedger, round_number: int, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
    """Add ``steps`` releases of one mechanism (server-side or distributed DP: the server knows
    the history), merged into the last entry when it is the same, as Opacus' accountant does."""
    history = list(ledger.history)
    if history and history[-1][:2] == (noise_multiplier, sample_rate):
        history[-1] = (noise_multiplier, sample_rate, history[-1][2] + steps)
    else:
        history.append((noise_multiplier, sample_rate, steps))
    ledger.record_round(round_number, history)


def save_ledger(path: Path, ledger: ClientLedger) -> None:
    """Atomic write: a crash mid-save keeps the previous ledger, never a truncated one."""
    write_json(path, ledger.to_dict())


def load_ledger(path: Path) -> ClientLedger | None:
    if not path.exists():
        return None
    try:
        return ClientLedger.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(
            f"{path}: the privacy ledger is unreadable ({err}). It is the only record of this client's "
            "spent budget: restore it from a backup rather than deleting it."
        ) from None


def save_run_ledger(run_dir: Path, ledgers: dict[str, ClientLedger]) -> Path:
    """The run's copy of every client's ledger (what the privacy report reads)."""
    return write_json(run_dir / RUN_LEDGER, {"clients": [ledgers[name].to_dict() for name in sorted(ledgers)]})


def load_run_ledger(run_dir: Path) -> dict[str, ClientLedger]:
    path = run_dir / RUN_LEDGER
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {entry["client"]: ClientLedger.from_dict(entry) for entry in document["clients"]}
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{path}: unreadable privacy ledger ({err}); restore it from a backup.") from None
