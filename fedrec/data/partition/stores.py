"""Users into stores: the data's own ``store_id`` column, or a seeded Dirichlet label-skew split."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from fedrec.data.interactions import Interactions
from fedrec.data.partition.labels import has_attribute_lists, user_labels
from fedrec.data.partition.stats import Partition
from fedrec.errors import ConfigError, DataError

log = logging.getLogger("fedrec.data")


def partition_by_store(
    data: Interactions, num_clients: int | None, *, alpha: float = 0.5, seed: int = 0, min_users: int = 2
) -> Partition:
    """One client per store: the data's ``store_id`` when it has one, else a seeded Dirichlet split.

    ``alpha``, ``seed`` and ``min_users`` only shape the simulated split; real stores are
    taken as they are.
    """
    if num_clients is not None and num_clients < 1:
        raise ConfigError(f"num_clients={num_clients} must be >= 1.")
    if data.stores is not None:
        return _real_stores(data, num_clients)
    if num_clients is None:
        raise ConfigError(
            f"{data.source} has no store_id column, so stores are simulated; pass --num-clients K "
            "to say how many."
        )
    if not 0.0 < alpha < float("inf"):
        raise ConfigError(f"alpha={alpha} must be a finite number > 0 (smaller = more skewed stores).")
    if min_users < 1:
        raise ConfigError(f"min_users={min_users} must be >= 1: a store without users cannot train.")
    if num_clients * min_users > data.n_users:
        raise ConfigError(
            f"{num_clients} stores x {min_users} users each needs {num_clients * min_users} users, but "
            f"{data.source} has {data.n_users}; pass --num-clients {data.n_users // min_users} or fewer."
        )
    labels, label_kind = user_labels(data)
    if not has_attribute_lists(data):
        log.info("%s has no item attribute lists; store skew follows %s instead.", data.source, label_kind)
    rng = np.random.default_rng(seed)
    owner = _dirichlet_owners(labels, num_clients, alpha, rng)
    owner = _top_up(owner, num_clients, min_users)
    return Partition(
        scheme="store",
        client_users=_group(owner, num_clients),
        client_names=tuple(f"store-{c}" for c in range(num_clients)),
        method=f"Dirichlet label skew by {label_kind}, alpha={alpha:g}, seed={seed}, min {min_users} users/store",
    )


# --- helpers -----------------------------------------------------------------------------


def _real_stores(data: Interactions, num_clients: int | None) -> Partition:
    stores = pd.Series(data.stores, dtype=object)
    if stores.isna().any():
        raise DataError(
            f"{data.source}: {int(stores.isna().sum())} user(s) have no store_id; fill it in or drop "
            "the column to simulate stores."
        )
    distinct = list(pd.unique(stores))
    try:
        distinct = sorted(distinct)
    except TypeError:  # mixed types: sort by text
        distinct = sorted(distinct, key=str)
    if num_clients is not None and num_clients != len(distinct):
        raise ConfigError(
            f"num_clients={num_clients}, but {data.source} has {len(distinct)} stores in its store_id "
            f"column (one client each); omit --num-clients or pass {len(distinct)}."
        )
    index = {s: c for c, s in enumerate(distinct)}
    owner = np.fromiter((index[s] for s in stores), dtype=np.int64, count=len(stores))
    return Partition(
        scheme="store",
        client_users=_group(owner, len(distinct)),
        client_names=tuple(store_label(s) for s in distinct),
        method="stores from the store_id column",
    )


def store_label(store_id) -> str:
    """A store's one name in a run (its client, ledger, private state, anonymization folder,
    reports): ``store-`` and its own id, with characters unsafe in a file name replaced."""
    return "store-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(store_id))


def _dirichlet_owners(labels: np.ndarray, k: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Per label (ascending): shuffle its users, draw shares ~ Dirichlet(alpha) over k stores, cut."""
    owner = np.empty(labels.size, dtype=np.int64)
    for members in _group(labels, int(labels.max()) + 1):
        if not members.size:
            continue
        members = rng.permutation(members)
        cuts = (np.cumsum(rng.dirichlet(np.full(k, alpha))) * members.size).astype(np.int64)[:-1]
        owner[members] = np.searchsorted(cuts, np.arange(members.size), side="right")
    return owner


def _top_up(owner: np.ndarray, k: int, min_users: int) -> np.ndarray:
    """Move users, highest index first, from the largest store to the smallest until all have min_users.

    The caller checked k * min_users <= n, so the largest store always has more than min_users.
    """
    members = [list(m) for m in _group(owner, k)]
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    owner = owner.copy()
    while sizes.min() < min_users:
        short, donor = int(np.argmin(sizes)), int(np.argmax(sizes))
        user = members[donor].pop()
        members[short].append(user)
        owner[user] = short
        sizes[donor] -= 1
        sizes[short] += 1
    return owner


def _group(owner: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Indices of each owner 0..k-1, ascending within each group."""
    order = np.argsort(owner, kind="stable").astype(np.int64)
    return tuple(np.split(order, np.cumsum(np.bincount(owner, minlength=k))[:-1]))
