"""The partition a run config asks for: stores (cross-silo) or one client per user (cross-device)."""

from __future__ import annotations

import numpy as np

from fedrec.data.interactions import Interactions
from fedrec.data.partition.stats import SCHEMES, Partition
from fedrec.data.partition.stores import partition_by_store
from fedrec.errors import ConfigError


def partition_by_user(data: Interactions) -> Partition:
    """Cross-device: client i is user i."""
    return Partition(
        scheme="user",
        client_users=tuple(np.array([u], dtype=np.int64) for u in range(data.n_users)),
        client_names=tuple(f"user-{raw}" for raw in data.users.raw),
        method="one client per user",
    )


def make_partition(
    data: Interactions, scheme: str, num_clients: int | None, *, alpha: float, seed: int
) -> Partition:
    """The partition a run config asks for."""
    if scheme == "store":
        return partition_by_store(data, num_clients, alpha=alpha, seed=seed)
    if scheme == "user":
        if num_clients is not None and num_clients != data.n_users:
            raise ConfigError(
                f"num_clients={num_clients}, but the user scheme has one client per user, "
                f"{data.n_users} here; omit --num-clients or pass {data.n_users}."
            )
        return partition_by_user(data)
    raise ConfigError(f"partition scheme {scheme!r} is not one of {', '.join(SCHEMES)}.")
