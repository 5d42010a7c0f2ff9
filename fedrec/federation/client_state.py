"""A client's private state on its own disk: what must never travel (MF user embeddings, and
with --keep-optimizer-state its optimizer's moments, which are statistics of its users' data).

Saved after every round, so a restarted client (or a resumed simulation) keeps its users'
vectors. Writes are atomic: a crash mid-write leaves the previous state intact.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from fedrec.errors import ModelError
from fedrec.rundir import write_torch


def state_file(state_dir: Path, client_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", client_name)
    return state_dir / f"{safe}.pt"


def save_private_state(path: Path, tensors: dict[str, torch.Tensor], user_ids: np.ndarray) -> None:
    if not tensors:
        return
    write_torch(path, {"tensors": tensors, "user_ids": [str(u) for u in user_ids]})


def load_private_state(path: Path, user_ids: np.ndarray) -> dict[str, torch.Tensor]:
    """The saved tensors, or {} on a client's first round. Refuses state of other users."""
    if not path.exists():
        return {}
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["user_ids"] != [str(u) for u in user_ids]:
        raise ModelError(
            f"{path}: saved private state belongs to a different set of users than this "
            "client's data. Point the client at its own state dir, or move the file away to start fresh."
        )
    return payload["tensors"]


def optimizer_state_file(state_dir: Path, client_name: str) -> Path:
    return state_file(state_dir, client_name).with_suffix(".optimizer.pt")


def save_optimizer_state(path: Path, state: dict[int, dict[str, torch.Tensor]]) -> None:
    write_torch(path, state)


def load_optimizer_state(path: Path) -> dict[int, dict[str, torch.Tensor]]:
    """The saved optimizer state, or {} on a client's first round."""
    if not path.exists():
        return {}
    return torch.load(path, map_location="cpu", weights_only=True)
