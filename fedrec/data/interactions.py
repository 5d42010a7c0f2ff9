"""The in-memory form of behaviour data every model and split works on.

Items are dense integers 1..n_items; 0 is reserved for padding so sequence models can pad
without a special case. Users are dense integers 0..n_users-1. Raw identifiers stay
reachable through :class:`IdMap` in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from fedrec.errors import DataError


@dataclass(frozen=True)
class IdMap:
    """Raw id <-> dense index, with an optional offset (items start at 1, users at 0)."""

    raw: np.ndarray  # raw ids in dense order; raw[i] has index i + offset
    offset: int = 0
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {r: i + self.offset for i, r in enumerate(self.raw)})

    def __len__(self) -> int:
        return len(self.raw)

    def to_index(self, raw_ids: Iterable[Hashable]) -> np.ndarray:
        try:
            return np.fromiter((self._index[r] for r in raw_ids), dtype=np.int64)
        except KeyError as missing:
            raise DataError(f"id {missing.args[0]!r} is not in this data set's id map.") from None

    def to_raw(self, indices: Iterable[int]) -> np.ndarray:
        idx = np.asarray(list(indices), dtype=np.int64) - self.offset
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.raw)):
            raise DataError(
                f"index out of range: valid indices are {self.offset}..{self.offset + len(self.raw) - 1}."
            )
        return self.raw[idx]

    @classmethod
    def from_raw(cls, raw_ids: Iterable[Hashable], offset: int = 0) -> "IdMap":
        """Map in sorted order, so numeric ids keep their order (Beauty item 7 -> 7)."""
        unique = pd.unique(pd.Series(list(raw_ids)))
        try:
            unique = np.sort(unique)
        except TypeError:  # mixed types: keep first-seen order
            pass
        return cls(raw=np.asarray(unique), offset=offset)


@dataclass(frozen=True)
class Interactions:
    """Per-user item sequences in time order, plus what audits will need later."""

    sequences: list[np.ndarray]  # per user: int64 item indices (1..n_items), oldest first
    users: IdMap  # dense user index 0..n_users-1 <-> raw user id
    items: IdMap  # dense item index 1..n_items <-> raw item id
    source: str  # where it came from, for reports
    stores: np.ndarray | None = None  # per user: raw store id, when the log has one
    ratings: list[np.ndarray] | None = None  # per user, aligned with sequences
    user_attributes: pd.DataFrame | None = None  # index = dense user index
    item_attributes: pd.DataFrame | None = None  # index = dense item index
    dropped: dict = field(default_factory=dict)  # what loading had to drop, and why

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def has_item_attributes(self) -> bool:
        """Whether items carry catalog attribute lists (brand, category ids), as Beauty's do."""
        return self.item_attributes is not None and "attributes" in self.item_attributes

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def stats(self) -> dict:
        lengths = np.fromiter((len(s) for s in self.sequences), dtype=np.int64)
        return {
            "source": self.source,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "mean_length": round(float(lengths.mean()), 3) if lengths.size else 0.0,
            "max_length": int(lengths.max()) if lengths.size else 0,
            "density": self.n_interactions / max(1, self.n_users * self.n_items),
            "has_stores": self.stores is not None,
            "dropped": dict(self.dropped),
        }


def build_interactions(
    user_raw: Sequence[Hashable],
    item_sequences_raw: Sequence[Sequence[Hashable]],
    *,
    source: str,
    stores: Sequence[Hashable] | None = None,
    ratings: list[np.ndarray] | None = None,
    user_attributes: pd.DataFrame | None = None,
    item_attributes: pd.DataFrame | None = None,
    dropped: dict | None = None,
) -> Interactions:
    """Assign dense ids to raw users/items and convert each sequence.

    Attribute frames come indexed by raw id and leave indexed by dense index.
    """
    users = IdMap(raw=np.asarray(list(user_raw)), offset=0)
    items = IdMap.from_raw((i for seq in item_sequences_raw for i in seq), offset=1)
    sequences = [items.to_index(seq) for seq in item_sequences_raw]
    if user_attributes is not None:
        user_attributes = _reindex(user_attributes, users)
    if item_attributes is not None:
        item_attributes = _reindex(item_attributes, items)
    return Interactions(
        sequences=sequences,
        users=users,
        items=items,
        source=source,
        stores=None if stores is None else np.asarray(list(stores)),
        ratings=ratings,
        user_attributes=user_attributes,
        item_attributes=item_attributes,
        dropped=dropped or {},
    )


def _reindex(frame: pd.DataFrame, ids: IdMap) -> pd.DataFrame:
    known = frame[frame.index.isin(ids.raw)]
    out = known.copy()
    out.index = pd.Index(ids.to_index(known.index), name="index")
    return out.sort_index()
