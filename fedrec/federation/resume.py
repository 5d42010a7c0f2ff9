"""Whether a run directory may be (re)used: a fresh run never overwrites one, and a resumed
run must carry the settings it was started with. Checkpoint files themselves are checkpoints.py."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation.checkpoints import Checkpoint, latest_checkpoint

log = logging.getLogger("fedrec.server")


def checkpoint_to_resume(run_dir: Path, federation: FederationConfig, resolved: dict[str, Any]) -> Checkpoint | None:
    checkpoint = latest_checkpoint(run_dir)
    if not federation.resume:
        if checkpoint is not None:
            raise ConfigError(
                f"{run_dir} already holds a run (round {checkpoint.round}); pass --resume to continue it "
                "or choose another --out. Nothing was overwritten."
            )
        return None
    if checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; start the run without --resume.")
    ignore = {"rounds", "resume", "round-timeout", "min-clients", "min-available", "run-dir"}
    saved = {k: checkpoint.config[k] if k in checkpoint.config else _option_default(k) for k in set(resolved) | set(checkpoint.config)}
    changed = {k for k in saved if k not in ignore and resolved.get(k) != saved[k]}
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {resolved.get(k)!r}" for k in sorted(changed))
        raise ConfigError(f"--resume with a different configuration ({details}); resume with the run's own settings.")
    log.info("resuming %s after round %d", run_dir, checkpoint.round)
    return checkpoint


def _option_default(key: str) -> Any:
    """What a checkpoint without ``key`` ran with: unset (None), or, for an option added after
    the run was started, its default (new options default to the behaviour before them)."""
    name = key.replace("-", "_")
    for config in (TrainConfig, FederationConfig):
        for field in dataclasses.fields(config):
            if field.name == name and field.default is not dataclasses.MISSING:
                return field.default
    return None
