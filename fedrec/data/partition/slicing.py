"""One client's slice of the data: what a client process trains on, with item ids kept global."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from fedrec.data.interactions import IdMap, Interactions
from fedrec.data.partition.stats import Partition
from fedrec.errors import ConfigError, DataError


def client_interactions(data: Interactions, partition: Partition, client: int) -> Interactions:
    """One client's users, renumbered 0..k-1; item ids stay global so item rows line up across clients."""
    if not 0 <= client < partition.num_clients:
        raise ConfigError(
            f"client {client} is out of range: this partition has {partition.num_clients} clients, "
            f"valid indices 0..{partition.num_clients - 1}."
        )
    users = partition.client_users[client]
    if users.size and users.max() >= data.n_users:
        raise DataError(
            f"the partition names user index {int(users.max())} but {data.source} has {data.n_users} "
            "users; build the partition from the same data."
        )
    return select_users(data, users, f"{data.source} [{partition.client_names[client]}]")


def select_users(data: Interactions, users: np.ndarray, source: str) -> Interactions:
    """The users at indices ``users`` (ascending), renumbered 0..k-1, with their attributes."""
    user_attributes = data.user_attributes
    if user_attributes is not None:
        user_attributes = user_attributes[user_attributes.index.isin(users)].copy()
        user_attributes.index = pd.Index(
            np.searchsorted(users, user_attributes.index.to_numpy()), name=data.user_attributes.index.name
        )
    return dataclasses.replace(
        data,
        sequences=[data.sequences[u] for u in users],
        users=IdMap(raw=data.users.raw[users], offset=0),
        source=source,
        stores=None if data.stores is None else data.stores[users],
        ratings=None if data.ratings is None else [data.ratings[u] for u in users],
        user_attributes=user_attributes,
        dropped=dict(data.dropped),
    )
