"""The Partition type, and how far each store's label mix is from the global one (non-IID skew)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrec.data.interactions import Interactions
from fedrec.data.partition.labels import user_labels
from fedrec.errors import ConfigError, DataError

SCHEMES = ("store", "user")


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


# --- helpers -----------------------------------------------------------------------------


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
