"""Who is which federated client: users grouped into stores (cross-silo) or one per client.

A user's whole history lives in exactly one client, so nothing about a user is split
across clients. Without a ``store_id`` column, stores are simulated with the label-skew
Dirichlet split common in the FL literature (Yurochkin et al. 2019, used by Hsu et al. 2019
and Flower Datasets' ``DirichletPartitioner``): each label's users are dealt out to stores in
proportions drawn from Dirichlet(alpha), so a small alpha gives stores with narrow tastes.
Everything here is a pure function of the data and the seed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd

from fedrec.data.interactions import IdMap, Interactions
from fedrec.errors import ConfigError, DataError

log = logging.getLogger("fedrec.data")

SCHEMES = ("store", "user")
POPULARITY_BANDS = 20  # labels when items have no attributes: equal-interaction popularity bands


@dataclass(frozen=True)
class Partition:
    """Client i holds the users ``client_users[i]`` (sorted dense indices), named ``client_names[i]``."""

    scheme: str  # "store" or "user"
    client_users: tuple[np.ndarray, ...]
    client_names: tuple[str, ...]
    method: str = ""  # how it was made, for logs and reports; not part of equality

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"partition scheme {self.scheme!r} is not one of {', '.join(SCHEMES)}.")
        if len(self.client_users) != len(self.client_names):
            raise ConfigError(
                f"{len(self.client_users)} client user lists but {len(self.client_names)} client names; "
                "give one name per client."
            )

    def __eq__(self, other: object) -> bool:
        """Same scheme, names and users per client (arrays compared by value)."""
        if not isinstance(other, Partition):
            return NotImplemented
        return (
            self.scheme == other.scheme
            and self.client_names == other.client_names
            and all(np.array_equal(a, b) for a, b in zip(self.client_users, other.client_users))
        )

    @property
    def num_clients(self) -> int:
        return len(self.client_users)

    def sizes(self) -> np.ndarray:
        """Users per client, (num_clients,) int64."""
        return np.fromiter((len(u) for u in self.client_users), dtype=np.int64, count=self.num_clients)

    def stats(self, data: Interactions) -> dict:
        """Client sizes, and for stores how far each store's user labels are from the global mix."""
        owner = _owner_of_each_user(self, data.n_users)
        lengths = np.fromiter((len(s) for s in data.sequences), dtype=np.int64, count=data.n_users)
        users = self.sizes()
        interactions = np.bincount(owner, weights=lengths, minlength=self.num_clients).astype(np.int64)
        skew = None
        if self.scheme == "store":
            labels, label_kind = user_labels(data)
            skew = {"label": label_kind, **_label_skew(owner, labels, self.num_clients)}
        return {
            "scheme": self.scheme,
            "clients": self.num_clients,
            "users_per_client": {
                "min": int(users.min()), "median": float(np.median(users)),
                "max": int(users.max()), "mean": round(float(users.mean()), 3),
            },
            "interactions_per_client": {
                "min": int(interactions.min()), "median": float(np.median(interactions)),
                "max": int(interactions.max()),
            },
            "label_skew": skew,  # None for the user scheme: one user per client is trivially skewed
        }

    def describe(self, data: Interactions) -> str:
        """A few lines for the start-of-run log."""
        s = self.stats(data)
        u, i = s["users_per_client"], s["interactions_per_client"]
        lines = [
            f"partition: {self.scheme} scheme, {s['clients']} clients ({self.method or 'no method recorded'})",
            f"  users/client: min {u['min']}, median {u['median']:g}, max {u['max']}, mean {u['mean']:g}",
            f"  interactions/client: min {i['min']}, median {i['median']:g}, max {i['max']}",
        ]
        if s["label_skew"] is not None:
            k = s["label_skew"]
            lines.append(
                f"  non-IID ({k['label']}): mean JS distance {k['js']:.3f}, mean TV {k['tv']:.3f} "
                "to the global mix (0 = IID, 1 = disjoint)"
            )
        return "\n".join(lines)


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
    if not _has_attribute_lists(data):
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
        source=f"{data.source} [{partition.client_names[client]}]",
        stores=None if data.stores is None else data.stores[users],
        ratings=None if data.ratings is None else [data.ratings[u] for u in users],
        user_attributes=user_attributes,
        dropped=dict(data.dropped),
    )


def user_labels(data: Interactions) -> tuple[np.ndarray, str]:
    """Each user's label (0..L-1) for the label-skew split, and what the label is.

    We take the attribute most frequent over all items of the history, not each item's
    first attribute: on Beauty a list reads [brand?, department, sub-category, ...], so the
    first attribute mixes brands with departments (395 labels, a long tail whose histogram
    looks skewed even under an IID split), while the mode over the whole history is the
    user's department, the top-level category (5 labels cover 96% of users): a meaningful store specialisation.
    Ties go to the attribute on more items (the broader category), then the first seen.
    Without attribute lists the label is the user's most frequent popularity band (items cut
    into bands holding equal shares of all interactions): mainstream versus niche taste.
    """
    owner, items = _interaction_arrays(data)
    if not _has_attribute_lists(data):
        return _popularity_band_labels(owner, items, data), f"popularity band of items ({POPULARITY_BANDS} bands)"
    frame = data.item_attributes.sort_index()  # item order, so the codes below are CSR rows
    codes, _ = pd.factorize(pd.Series(list(chain.from_iterable(frame["attributes"])), dtype=object))
    n_attrs = int(codes.max()) + 1 if codes.size else 0
    counts = np.zeros(data.n_items + 1, dtype=np.int64)  # attributes per dense item id
    counts[frame.index.to_numpy(dtype=np.int64)] = frame["attributes"].map(len).to_numpy(dtype=np.int64)
    starts = np.cumsum(counts) - counts
    n = counts[items]  # every (user, attribute) pair, once per interaction:
    attrs = codes[np.repeat(starts[items], n) + _ranges(n)]
    on_items = np.bincount(codes, minlength=n_attrs)
    rank = np.empty(n_attrs, dtype=np.int64)
    rank[np.lexsort((np.arange(n_attrs), -on_items))] = np.arange(n_attrs)
    labels = _mode_per_user(np.repeat(owner, n), attrs, rank, data.n_users)
    labels[labels < 0] = n_attrs  # users none of whose items have attributes form their own label
    return labels, "most frequent item attribute"


# --- helpers -----------------------------------------------------------------------------


def _has_attribute_lists(data: Interactions) -> bool:
    """Sequence files bring an ``attributes`` list per item; a log's own item columns do not."""
    return data.item_attributes is not None and "attributes" in data.item_attributes.columns


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
        client_names=tuple(str(s) for s in distinct),
        method="stores from the store_id column",
    )


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


def _owner_of_each_user(partition: Partition, n_users: int) -> np.ndarray:
    users = np.concatenate(partition.client_users) if partition.num_clients else np.empty(0, np.int64)
    if users.size != n_users or not np.array_equal(np.sort(users), np.arange(n_users)):
        raise DataError(
            f"the partition covers {users.size} user slots but the data has {n_users} users; "
            "build the partition from the same data."
        )
    owner = np.empty(n_users, dtype=np.int64)
    owner[users] = np.repeat(np.arange(partition.num_clients), partition.sizes())
    return owner


def _interaction_arrays(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) per interaction, flattened."""
    lengths = np.fromiter((len(s) for s in data.sequences), dtype=np.int64, count=data.n_users)
    items = np.concatenate(data.sequences).astype(np.int64) if data.n_users else np.empty(0, np.int64)
    return np.repeat(np.arange(data.n_users), lengths), items


def _popularity_band_labels(owner: np.ndarray, items: np.ndarray, data: Interactions) -> np.ndarray:
    """Each user's most frequent popularity band; bands hold equal shares of all interactions."""
    popularity = np.bincount(items, minlength=data.n_items + 1)
    order = np.lexsort((np.arange(popularity.size), -popularity))  # most popular first
    before = np.cumsum(popularity[order]) - popularity[order]
    band = np.empty(popularity.size, dtype=np.int64)
    band[order] = np.minimum(before * POPULARITY_BANDS // max(1, items.size), POPULARITY_BANDS - 1)
    labels = _mode_per_user(owner, band[items], np.arange(POPULARITY_BANDS), data.n_users)
    labels[labels < 0] = 0
    return labels


def _mode_per_user(owner: np.ndarray, values: np.ndarray, rank: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's most frequent value, ties to the lower ``rank``; -1 for users with no values."""
    labels = np.full(n_users, -1, dtype=np.int64)
    if not values.size:
        return labels
    width = int(values.max()) + 1
    pairs, counts = np.unique(owner * width + values, return_counts=True)
    user, value = pairs // width, pairs % width
    order = np.lexsort((rank[value], -counts, user))
    first = np.r_[True, user[order][1:] != user[order][:-1]]
    labels[user[order][first]] = value[order][first]
    return labels


def _label_skew(owner: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """Mean Jensen-Shannon distance (base 2) and total variation, client label mix vs global."""
    n_labels = int(labels.max()) + 1
    hist = np.bincount(owner * n_labels + labels, minlength=k * n_labels).reshape(k, n_labels).astype(float)
    local = hist / hist.sum(axis=1, keepdims=True)
    glob = hist.sum(axis=0) / hist.sum()
    mid = (local + glob) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_local = np.where(local > 0, local * np.log2(local / mid), 0.0).sum(axis=1)
        kl_glob = np.where(glob > 0, glob * np.log2(glob / mid), 0.0).sum(axis=1)
    js = np.sqrt(np.clip((kl_local + kl_glob) / 2, 0.0, 1.0))
    tv = np.abs(local - glob).sum(axis=1) / 2
    return {"js": round(float(js.mean()), 4), "tv": round(float(tv.mean()), 4)}


def _ranges(n: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [0..n0), [0..n1), ..."""
    return np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
