"""The release gate end to end: audit a run, and write DIR/release/ only when the verdict
passes (or a named person overrides it, with a reason that stays in the card).

A blocked model leaves no release behind (an older one in the same run is removed: the
latest verdict rules); a passed or overridden one gets the bundle of ``fedrec.release.bundle``.
The override reuses the audit on disk, which must be of the model on disk (its sha256 is
recorded): a federated run's audit cannot be recomputed by a server without test data.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fedrec.audit.gate import BLOCKED, PASSED, failed_checks
from fedrec.config import AuditConfig
from fedrec.data import Interactions
from fedrec.errors import ConfigError
from fedrec.models.base import Recommender
from fedrec.privacy.report import REPORT_JSON, audit_sentence, guarantee
from fedrec.release.audit_run import Subject, audit_popularity, audit_subject, open_subject
from fedrec.release.bundle import write_release_files, write_release_folder
from fedrec.release.card import model_card, render_card
from fedrec.rundir import RunDir, sha256_file, write_json

log = logging.getLogger("fedrec.release")

OVERRIDDEN = "overridden"
OVERRIDES = "overrides.jsonl"  # DIR/audit/: every override ever made on this run, one JSON line each
PLOTS = ("group_utility.png", "exposure_curve.png", "popularity.png")
SENSITIVE = ("age_band", "gender", "skin_type", "postcode_prefix", "city", "store")


def code_version() -> dict[str, Any]:
    """fedrec's version and, when run from a git checkout, its commit and whether it was clean."""
    try:
        release = version("fedrec")
    except PackageNotFoundError:  # running from a source tree that was never installed
        release = None
    found: dict[str, Any] = {"fedrec": release, "commit": None, "dirty": None}
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            found["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                             text=True, timeout=10, check=True).stdout.strip()
            found["dirty"] = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return found


def load_baseline(release_dir: str | Path) -> dict[str, Any]:
    """The audit a previous release passed (RELEASE_DIR/audit.json), for the change bounds."""
    path = Path(release_dir) / "audit.json"
    if not path.exists():
        raise ConfigError(f"--baseline {release_dir}: no audit.json there; give the release/ folder of an earlier "
                          "released run (DIR/release).")
    return json.loads(path.read_text(encoding="utf-8"))


def privacy_statement(run: RunDir) -> str:
    path = run.privacy / REPORT_JSON
    if not path.exists():
        return "No privacy report in the run (fedrec privacy-report DIR writes one); no differential-privacy guarantee is claimed."
    report = json.loads(path.read_text(encoding="utf-8"))
    return " ".join(text for text in (guarantee(report), audit_sentence(report)) if text)


def data_summary(run: RunDir, data: Interactions) -> dict[str, Any]:
    """What the model was trained on, as the card states it: sizes after anonymization."""
    stats = data.stats()
    attributes = [] if data.user_attributes is None else [str(c) for c in data.user_attributes.columns]
    anonymized = sorted(p.parent.name for p in run.anonymization.glob("*/report.json")) if run.anonymization.is_dir() else []
    text = (f"{stats['users']} users, {stats['items']} items, {stats['interactions']} interactions"
            + (f"; customer attributes {', '.join(attributes)}" if attributes else "")
            + (f"; anonymized on {len(anonymized)} client(s) before training (reports in anonymization/)" if anonymized else ""))
    return {"source": data.source, "description": text, "users": stats["users"], "items": stats["items"],
            "interactions": stats["interactions"], "anonymized_clients": anonymized,
            "sensitive": [c for c in attributes if c in SENSITIVE] + (["store"] if data.stores is not None else [])}


def publish(run: RunDir, audit: dict[str, Any], *, model: Recommender, data: Interactions, counts: np.ndarray | None,
            counts_source: str, override: dict[str, Any] | None = None) -> Path:
    """Write DIR/release/ for an audit that passed (or was overridden)."""
    if not model.releasable:
        raise ConfigError(f"{run.root}: {model.not_releasable_because}, so it is never released (not even with an override).")
    document = run.read_metrics()
    verdict = {"verdict": OVERRIDDEN if override else audit["verdict"], "audit_verdict": audit["verdict"],
               "checks": audit["checks"], "skipped": audit.get("skipped", []), "override": override,
               "model_sha256": audit.get("model_sha256")}
    if verdict["verdict"] not in (PASSED, OVERRIDDEN):
        raise ConfigError(f"the audit of {run.root} blocked the model; release it only with an override reason.")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    plots = [run.audit / name for name in PLOTS if (run.audit / name).exists()]
    summary = data_summary(run, data)
    card = model_card(run=document, audit=audit, verdict=verdict, data=summary, privacy=privacy_statement(run),
                      code_version=code_version(), plots=[p.name for p in plots], created=created)
    config = {"train": document.get("config"), "audit": audit.get("config"), "data": summary}

    def fill(folder: Path) -> None:
        write_release_files(folder, model=model, data=data, counts=counts, counts_source=counts_source, config=config,
                            audit=audit, verdict=verdict, card=card, card_markdown=render_card(card), plots=plots)

    path = write_release_folder(run, fill)
    log.info("release %s: %s -> %s", run.root, verdict["verdict"], path)
    return path


def withdraw(run: RunDir) -> None:
    """A blocked verdict removes an earlier release of this run: serving must not load it."""
    if run.release.exists():
        shutil.rmtree(run.release)
        log.warning("removed %s: the latest audit blocked this run's model", run.release)


def conclude(run: RunDir, audit: dict[str, Any], *, model: Recommender, data: Interactions, counts: np.ndarray | None,
             counts_source: str) -> dict[str, Any]:
    """After an audit was written: release on pass, withdraw on block, and record the
    outcome in metrics.json (``release_gate``), which is returned."""
    if audit["verdict"] == PASSED and not model.releasable:
        audit["release"], audit["not_released"] = None, f"{model.not_releasable_because}: audited, never released"
    elif audit["verdict"] == PASSED:
        audit["release"] = str(publish(run, audit, model=model, data=data, counts=counts, counts_source=counts_source))
    else:
        withdraw(run)
        audit["release"] = None
    return record_gate(run, audit)


def training_counts(subject: Subject) -> tuple[np.ndarray | None, str]:
    """The popularity a server-side release may fall back to: the audit's (exact training
    counts; under DP only the counts the run released, else none: the model's own ranking)."""
    return audit_popularity(subject)


def audit_and_release(run_dir: str | Path, config: AuditConfig, *, baseline: str | Path | None = None) -> dict[str, Any]:
    """``fedrec audit DIR``: the server-side audit, the gate, and the release when it passes.
    Returns the audit document, with ``release`` the release folder (None when blocked)."""
    run = RunDir(Path(run_dir)).require()
    base = None if baseline is None else load_baseline(baseline)
    subject = open_subject(run.root)
    document = audit_subject(subject, config, baseline=base)
    counts, source = training_counts(subject)
    conclude(run, document, model=subject.model, data=subject.data, counts=counts, counts_source=source)
    return document


def record_gate(run: RunDir, document: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's outcome into metrics.json (``release_gate``), where the CLI and Run read it."""
    outcome = {"verdict": document["verdict"], "checks": document["checks"], "audit": str(run.audit / "audit.json"),
               "release": document.get("release")}
    if document.get("not_released"):
        outcome["not_released"] = document["not_released"]
    metrics = run.read_metrics()
    metrics["release_gate"] = outcome
    write_json(run.metrics, metrics)
    return outcome


def override_release(run_dir: str | Path, reason: str) -> dict[str, Any]:
    """``fedrec release DIR --override-reason``: release the run's audited model although its
    gate blocked it; the reason, user and time go into the verdict, the card and
    DIR/audit/overrides.jsonl. Returns the override record."""
    run = RunDir(Path(run_dir)).require()
    if not reason or not reason.strip():
        raise ConfigError('--override-reason is empty; say why this model may be released despite its audit '
                          '(it is recorded in the model card).')
    path = run.audit / "audit.json"
    if not path.exists():
        raise ConfigError(f"{run.root} has no audit to override (no audit/audit.json); run fedrec audit {run.root} first.")
    audit = json.loads(path.read_text(encoding="utf-8"))
    if audit.get("model_sha256") and audit["model_sha256"] != sha256_file(run.model):
        raise ConfigError(f"{path} audited another model than {run.model} (it changed since); run fedrec audit "
                          f"{run.root} again, then override that audit.")
    record = {"reason": reason.strip(), "user": _user(), "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "audit_verdict": audit["verdict"], "failed_checks": [f"{c['check']} on {c['slice']}" for c in failed_checks(audit)]}
    subject = open_subject(run.root)
    counts, source = training_counts(subject)
    path = publish(run, audit, model=subject.model, data=subject.data, counts=counts, counts_source=source,
                   override=record)
    with open(run.audit / OVERRIDES, "a", encoding="utf-8") as trail:
        trail.write(json.dumps(record) + "\n")
    record_gate(run, {**audit, "verdict": OVERRIDDEN, "release": str(path)})
    return record


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or f"uid {os.getuid()}"


__all__ = ["BLOCKED", "OVERRIDDEN", "PASSED", "audit_and_release", "conclude", "load_baseline",
           "override_release", "publish", "record_gate", "withdraw"]
