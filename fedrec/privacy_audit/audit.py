"""`fedrec privacy-audit DIR`: the attacks, run on a finished simulated run, and their report.

Writes DIR/privacy/attacks.json (for tools) and attacks.md (for people), then refreshes the
privacy report, which includes them; a release made after the audit carries them in its
model card. Nothing the run wrote is changed: the replayed round runs on a scratch copy of
the stores' private state, without their ledgers.
"""

from __future__ import annotations

import logging
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedrec.config import SEQUENCE_MODELS
from fedrec.data import leave_one_out
from fedrec.data.holdout import held_out
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.checkpoints import latest_checkpoint
from fedrec.federation.client import shared_dataset
from fedrec.models.registry import load_model
from fedrec.privacy.distributed_dp import SHARES_SEEN
from fedrec.privacy.attack_metrics import epsilon_lower_bound
from fedrec.privacy.ledger import ClientLedger, load_run_ledger
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.report import write_privacy_report
from fedrec.privacy_audit.canaries import canary_audit
from fedrec.privacy_audit.leakage import item_leakage
from fedrec.privacy_audit.membership import membership_attack, membership_scores
from fedrec.privacy_audit.reidentification import reidentification_risk
from fedrec.privacy_audit.replay import replay_round
from fedrec.privacy_audit.render import render_markdown
from fedrec.rundir import RunDir, write_json, write_text

log = logging.getLogger("fedrec.privacy_audit")
NO_DP_DELTA = 1e-5  # the bound's delta for a run without DP (which has no delta of its own)


def audit_privacy(run_dir: Path, *, round_number: int | None = None, seed: int = 0, leakage: bool = True,
                  membership: bool = True) -> dict[str, Any]:
    """Run the attacks on ``run_dir`` and write their report; returns attacks.json's content."""
    run = RunDir(Path(run_dir)).require()
    checkpoint = latest_checkpoint(run.root)
    if checkpoint is None:
        raise ConfigError(f"{run.root} has no federated checkpoints; privacy-audit attacks simulated federated runs "
                          "(fedrec simulate --audit-holdout 0.1 --out DIR).")
    train, federation = wire.config_from_wire(checkpoint.config)
    worst = accounted_ledger(run.root)
    epsilon, delta = (None, None) if worst is None else (float(worst.epsilon), float(worst.delta))
    document: dict[str, Any] = {
        "run": str(run.root), "model": train.model, "mode": mode_label(train, federation),
        "reported_round": run.read_metrics().get("reported_round"),  # the round of the model.pt attacked
        "accounted_epsilon": epsilon, "delta": delta,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": {},
    }
    with warnings.catch_warnings():  # the run said it once; the audit's replay need not
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        if leakage:
            log.info("item-set leakage: replaying round %s of %s with every store's own code",
                     round_number or checkpoint.round, run.root)
            started = time.perf_counter()
            document["item_leakage"] = item_leakage(replay_round(run.root, round_number))
            document["seconds"]["item_leakage"] = round(time.perf_counter() - started, 1)
        if membership:
            log.info("membership inference on %s", run.model)
            started = time.perf_counter()
            document["membership"] = membership_inference(run.root, train, federation, delta=delta or NO_DP_DELTA, seed=seed)
            document["seconds"]["membership"] = round(time.perf_counter() - started, 1)
    if worst is not None:
        state = Path(federation.state_dir).expanduser() if federation.state_dir else run.client_state
        canaries = canary_audit(state, worst, seed=seed)
        document["canaries"] = canaries.to_dict() if canaries else {
            "skipped": f"{worst.client} kept no canaries: they ride along per-store DP-SGD (--dp); under --dp distributed "
                       "each round's check coordinates test the noise (privacy report, \"Noise check\")"}
    document["reidentification"] = reidentification_risk(run.root)
    document["verdict"] = verdict(document)
    write_json(run.attacks, document)
    write_text(run.attacks.with_suffix(".md"), render_markdown(document))
    write_privacy_report(run.root)
    return document


def mode_label(train, federation) -> str:
    return f"{privacy_mode(train.dp).audit_name}{', SecAgg+' if federation.secagg else ''}"


def accounted_ledger(run_dir: Path) -> ClientLedger | None:
    """The ledger behind the released model's epsilon and delta: the largest epsilon over the
    run's ledgers, leaving out the server's view of single shares (a guarantee about the
    updates, not the model); None without DP."""
    ledgers = [ledger for name, ledger in load_run_ledger(run_dir).items() if name != SHARES_SEEN]
    return max(ledgers, key=lambda ledger: ledger.epsilon) if ledgers else None


def membership_inference(run_dir: Path, train, federation, *, delta: float, seed: int) -> dict[str, Any]:
    """The loss attack on model.pt: held-out customers against as many customers who trained."""
    if not federation.audit_holdout:
        return {"skipped": "the run held no customers out of training; run it with --audit-holdout 0.1 to test membership"}
    data = shared_dataset(train.data, train.min_interactions, train.short_users)
    histories = leave_one_out(data).train
    shortest = 2 if train.model in SEQUENCE_MODELS else 1  # a sequence model predicts from the second item on
    usable = np.array([len(h) >= shortest for h in histories])
    out = held_out(data.users.raw, federation.audit_holdout, train.seed)
    non_members = np.flatnonzero(out & usable)
    members = np.random.default_rng(seed).permutation(np.flatnonzero(~out & usable))[: len(non_members)]
    model = load_model(RunDir(run_dir).model)
    scores = membership_scores(model, [histories[u] for u in np.concatenate([members, non_members])])
    result = membership_attack(scores[: len(members)], scores[len(members):], delta=delta, seed=seed)
    half = len(non_members) - len(non_members) // 2  # the evaluation half (split_epsilon_lower_bound)
    return {**result.to_dict(), "largest_provable": epsilon_lower_bound(half, half, 0, half, delta), "delta": delta,
            "model": str(RunDir(run_dir).model)}


def verdict(document: dict[str, Any]) -> dict[str, Any]:
    """Whether the attacks found more than the accounting allows: an empirical lower bound above
    the accounted epsilon means the implementation or the accounting is broken."""
    epsilon = document.get("accounted_epsilon")
    if epsilon is None:
        return {"consistent": None, "reason": "no DP guarantee to check"}
    tests = []  # (attack, its bound, the epsilon accounted for what it attacked)
    membership, canaries = document.get("membership") or {}, document.get("canaries") or {}
    if membership.get("epsilon_lower_bound") is not None:
        tests.append(("membership", membership["epsilon_lower_bound"], epsilon))
    if canaries.get("epsilon_lower_bound") is not None:
        tests.append(("canaries", canaries["epsilon_lower_bound"], canaries["accounted_epsilon"]))
    if not tests:
        return {"consistent": None, "reason": "no attack ran"}
    name, bound, accounted = max(tests, key=lambda test: test[1] - test[2])
    return {"consistent": bool(bound <= accounted), "attack": name,
            "reason": f"empirical lower bound {bound:.2f} ({name}) {'<=' if bound <= accounted else '>'} accounted epsilon "
                      f"{accounted:.2f}"}
