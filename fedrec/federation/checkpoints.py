"""Per-round checkpoints of the global model, so a killed run resumes where it stopped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedrec.errors import ConfigError
from fedrec.rundir import CHECKPOINTS, write_torch

CHECKPOINT_DIR = CHECKPOINTS
# What a run did before these options existed: a checkpoint written then resumes with that
# behaviour, not with the option's recipe default (which may have changed since).
BEFORE_THE_OPTION = {"attribute-buckets": 0, "drift-correction": "none", "client-lr-decay": 1.0}
_NAME = re.compile(r"round-(\d+)\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    round: int
    state: dict[str, torch.Tensor]  # the global model's shareable parameters
    history: list[dict[str, Any]]  # per-round records up to and including this round
    config: dict[str, Any]  # resolved train + federation config
    server_optimizer: dict[str, torch.Tensor] = field(default_factory=dict)  # FedAvgM momentum / FedAdam moments


def checkpoint_path(run_dir: Path, round_number: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"round-{round_number:04d}.pt"


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> Path:
    path = checkpoint_path(run_dir, checkpoint.round)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_torch(path, {"round": checkpoint.round, "state": checkpoint.state, "history": checkpoint.history,
                              "config": checkpoint.config, "server_optimizer": checkpoint.server_optimizer})


def prune_checkpoints(run_dir: Path, *, keep_last: int, keep: set[int]) -> list[int]:
    """Delete the checkpoints of all but the last ``keep_last`` rounds and those in ``keep``
    (0: keep all); returns the rounds deleted. Each checkpoint holds the whole history, so
    metrics lose nothing; resume needs only the latest."""
    if keep_last <= 0:
        return []
    found = sorted((int(m.group(1)), p) for p in (run_dir / CHECKPOINT_DIR).glob("round-*.pt") if (m := _NAME.search(p.name)))
    deleted = []
    for round_number, path in found[:-keep_last]:
        if round_number not in keep:
            path.unlink(missing_ok=True)
            deleted.append(round_number)
    return deleted


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise ConfigError(f"{path}: unreadable checkpoint ({err}); delete it to resume from the one before.") from None
    config = {**BEFORE_THE_OPTION, **payload["config"]}
    return Checkpoint(round=payload["round"], state=payload["state"], history=payload["history"], config=config,
                      server_optimizer=payload.get("server_optimizer", {}))  # older checkpoints have none


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    found = sorted(
        (int(m.group(1)), p) for p in (run_dir / CHECKPOINT_DIR).glob("round-*.pt") if (m := _NAME.search(p.name))
    )
    return load_checkpoint(found[-1][1]) if found else None
