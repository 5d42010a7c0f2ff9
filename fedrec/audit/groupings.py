"""Customer groupings for the group-utility audit: activity level, store, any attribute.

A grouping is one string label per evaluated user plus a vocabulary (the ordered labels
every client and the server agree on, so their sums line up). Missing values get their own
label rather than being dropped, so no user silently leaves the audit.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from fedrec.errors import ConfigError, DataError

ACTIVE = "active"  # the most active users by train history length
REST = "rest"
ACTIVITY_LABELS = (ACTIVE, REST)
MISSING = "unknown"
OTHER = "other"  # under a fixed vocabulary: every value it does not list
DEFAULT_TOP_SHARE = 0.2


LENGTH_BINS = 256  # a length histogram's fixed size when stores sum it securely: the last bin holds 255 or more


def length_histogram(history_lengths: Sequence[int] | np.ndarray, *, bins: int | None = None) -> np.ndarray:
    """(L,) int64 users per history length; with ``bins``, exactly that many, the last one
    counting every length from bins - 1 up (a secure sum needs one size at every store). The
    activity threshold read from it is exact while it lies below bins - 1."""
    lengths = np.asarray(history_lengths, dtype=np.int64)
    if bins is None:
        return np.bincount(lengths).astype(np.int64)
    return np.bincount(np.minimum(lengths, bins - 1), minlength=bins).astype(np.int64)


def activity_threshold(history_lengths: Sequence[int] | np.ndarray, *, top_share: float = DEFAULT_TOP_SHARE) -> int:
    """The train-history length L* from which a user counts as active.

    L* is the length of the ceil(top_share x U)-th longest history; ties at L* join the active
    group, so it may hold a little more than ``top_share`` of the users. Computed once on the
    whole population (the server's evaluation set) and sent to clients, so every client
    splits at the same length.
    """
    lengths = np.asarray(history_lengths, dtype=np.int64)
    if not 0.0 < top_share < 1.0:
        raise ConfigError(f"top_share={top_share}: give the share of most active users, in (0, 1), e.g. 0.2.")
    if not lengths.size:
        raise DataError("no history lengths: the activity threshold needs the evaluated users' train lengths.")
    n_top = max(1, math.ceil(round(top_share * lengths.size, 9)))
    return int(-np.partition(-lengths, n_top - 1)[n_top - 1])


def activity_groups(history_lengths: Sequence[int] | np.ndarray, *, threshold: int) -> np.ndarray:
    """(U,) ACTIVE where the train history has ``threshold`` items or more, else REST."""
    lengths = np.asarray(history_lengths, dtype=np.int64)
    return np.where(lengths >= threshold, ACTIVE, REST)


def attribute_groups(values: Iterable[object], *, missing: str = MISSING) -> np.ndarray:
    """(U,) str labels of a per-user column (store id, age band, gender, skin type...).

    None, NaN and empty strings become ``missing``. Numbers keep their text (store 3 -> "3").
    """
    def label(value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "":
            return missing
        return str(value)

    return np.array([label(v) for v in values], dtype=object).astype(str)


def vocabulary(groups: np.ndarray) -> tuple[str, ...]:
    """Sorted distinct labels: the vocabulary of a central audit (a federation sends its own)."""
    return tuple(str(g) for g in np.unique(np.asarray(groups).astype(str)))


def relabel(groups: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(U,) str: each label in ``labels`` kept, any other one OTHER, so that a vocabulary fixed
    in advance holds every user (``labels`` must list OTHER)."""
    if OTHER not in labels:
        raise ConfigError(f"a fixed vocabulary {list(labels)[:10]} must list {OTHER!r} for the values it does not name.")
    values = np.asarray(groups).astype(str)
    return np.where(np.isin(values, np.asarray(labels, dtype=str)), values, OTHER)


def encode(groups: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(U,) int64 index of each user's label in ``labels``; an unknown label is an error."""
    if len(set(labels)) != len(labels):
        raise ConfigError(f"group labels {list(labels)} repeat a label; give each group once.")
    index = {str(label): i for i, label in enumerate(labels)}
    present, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    unknown = [str(p) for p in present if str(p) not in index]
    if unknown:
        raise DataError(
            f"group label(s) {unknown[:5]} are not in the vocabulary {list(labels)[:10]}; "
            "add them to the labels every client uses (or map them to a shared label)."
        )
    codes = np.array([index[str(p)] for p in present], dtype=np.int64)
    return codes[inverse.reshape(-1)] if present.size else np.zeros(0, dtype=np.int64)
