"""The run directory, the unit users see: its layout, named once, and the one way its files
are written (atomically, so a crash never leaves half a file).

    metrics.json      what the run measured (every command writes or reads it)
    model.pt          the model the run reports
    checkpoints/      one file per federated round (resume)
    client_state/     simulated clients' private state (MF user vectors, ledgers, optimizer state)
    privacy/          the ledger, the privacy report and the privacy audit's attacks
    anonymization/    what anonymization did to each client's raw rows
    audit/            fairness and bias audits of the model
    release/          what serving may load: model, item index, model card, verdict

Sits below every layer: training, federation, privacy and models all write here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fedrec.errors import ConfigError

METRICS = "metrics.json"
MODEL = "model.pt"
CHECKPOINTS = "checkpoints"
CLIENT_STATE = "client_state"
PRIVACY = "privacy"
ATTACKS = "attacks.json"
ANONYMIZATION = "anonymization"
AUDIT = "audit"
RELEASE = "release"


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory (nothing is created until written)."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def model(self) -> Path:
        return self.root / MODEL

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def client_state(self) -> Path:
        return self.root / CLIENT_STATE

    @property
    def privacy(self) -> Path:
        return self.root / PRIVACY

    @property
    def attacks(self) -> Path:
        """What `fedrec privacy-audit` found (attacks.json; attacks.md beside it)."""
        return self.root / PRIVACY / ATTACKS

    @property
    def anonymization(self) -> Path:
        return self.root / ANONYMIZATION

    @property
    def audit(self) -> Path:
        return self.root / AUDIT

    @property
    def release(self) -> Path:
        return self.root / RELEASE

    def require(self, *, or_privacy: bool = False) -> "RunDir":
        """This directory, if it holds a run (its metrics.json; with ``or_privacy``, a privacy
        folder is enough); a ConfigError naming what to pass instead otherwise."""
        where = "give the directory of a run (what --out/--resume or out= named)"
        if not self.root.is_dir():
            raise ConfigError(f"no run directory at {self.root}; {where}.")
        if not self.metrics.exists() and not (or_privacy and self.privacy.is_dir()):
            raise ConfigError(f"{self.root} holds no fedrec run (no metrics.json); {where}.")
        return self

    def read_metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics.read_text(encoding="utf-8"))


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path`` in
    one rename: readers see the old file or the new one, never a truncated one. The folder
    is created if needed; the temporary file is removed if writing fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """Indented JSON with numpy scalars and paths made plain."""
    return write_text(path, json.dumps(document, indent=2, default=_jsonable) + "\n")


def write_torch(path: Path, payload: Any) -> Path:
    """``torch.save`` of tensors and plain containers (load them with weights_only=True)."""
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes: how a release names the exact model it audited."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
