"""One client reply carrying every audit's sums, and the server adding the replies.

A reply is a flat ``dict[str, np.ndarray]`` (one Flower ArrayRecord): the concatenation of
each sums object's ``to_arrays()``, whose keys start with the object's key
("group-utility/activity", "group-utility/store", "exposure", "utility/model").

``add_replies`` needs every reply to carry the same vocabularies (a central audit's split,
or a federation whose server sent the labels). ``add_by_label_union`` is for a federation
whose server does not know them (attribute values live on the clients): each grouping is
summed over the union of the labels the replies name, a label a client lacks counting 0.

A secure sum adds vectors, not replies: ``flatten`` lays a reply's sums out as one float
vector in an order both sides know, ``layout`` is what the server needs to cut the sum back
(each key's spec, no values) and ``unflatten`` does the cutting, counts rounded to integers.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np

from fedrec.audit.exposure import ExposureSums
from fedrec.audit.group_utility import GroupUtilitySums, UtilitySums
from fedrec.audit.sums import SPEC, AuditSums, read_spec
from fedrec.errors import DataError

KINDS = MappingProxyType({cls.KIND: cls for cls in (GroupUtilitySums, UtilitySums, ExposureSums)})


def pack(*sums: AuditSums) -> dict[str, np.ndarray]:
    """The reply: every object's arrays under its own key."""
    keys = [s.key for s in sums]
    if len(set(keys)) != len(keys):
        raise DataError(f"two audit sums share a key in one reply ({sorted(keys)}); name each grouping once.")
    out: dict[str, np.ndarray] = {}
    for s in sums:
        out.update(s.to_arrays())
    return out


def unpack(arrays: Mapping[str, np.ndarray]) -> dict[str, AuditSums]:
    """{key: sums} of a reply, each rebuilt as its kind's class (shapes checked)."""
    out: dict[str, AuditSums] = {}
    for name in sorted(arrays):
        if not name.endswith(f"/{SPEC}"):
            continue
        key = name[: -len(SPEC) - 1]
        kind, _ = read_spec(arrays, key)
        if kind not in KINDS:
            raise DataError(f"{key}: unknown audit kind {kind!r}; known: {sorted(KINDS)}.")
        out[key] = KINDS[kind].from_arrays(arrays, key)
    return out


def layout(packed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A packed reply's spec arrays only (kinds, groupings, labels, k): what its sums are, not
    what they hold."""
    return {name: values for name, values in packed.items() if name.endswith(f"/{SPEC}")}


def flatten(sums: Mapping[str, AuditSums], keys: Sequence[str]) -> np.ndarray:
    """The arrays of ``sums[key]`` for each of ``keys`` in turn (each in its ARRAYS order), as
    one float64 vector: what a secure sum adds up over stores."""
    parts = [np.asarray(getattr(sums[key], name), dtype=np.float64).reshape(-1)
             for key in keys for name in sums[key].ARRAYS]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def unflatten(total: np.ndarray, specs: Mapping[str, np.ndarray], keys: Sequence[str]) -> dict[str, AuditSums]:
    """``flatten``'s inverse on a sum of such vectors: {key: sums}, the shapes read off each
    key's spec in ``specs`` (a ``layout``), integer arrays rounded to the nearest integer."""
    total = np.asarray(total, dtype=np.float64).reshape(-1)
    layouts = []
    for key in keys:
        kind, spec = read_spec(specs, key)
        if kind not in KINDS:
            raise DataError(f"{key}: unknown audit kind {kind!r}; known: {sorted(KINDS)}.")
        layouts.append((key, KINDS[kind], spec, KINDS[kind].shapes(spec)))
    needed = sum(int(np.prod(shape, dtype=np.int64)) for *_, shapes in layouts for shape, _ in shapes.values())
    if needed != total.size:
        raise DataError(f"a flat sum of {total.size} entries for audit sums {list(keys)}, which hold {needed}; every "
                        "store must flatten the keys the server named, in its order.")
    out: dict[str, AuditSums] = {}
    at = 0
    for key, kind, spec, shapes in layouts:
        values = {}
        for name in kind.ARRAYS:  # flatten's order
            shape, dtype_kind = shapes[name]
            part = total[at:at + int(np.prod(shape, dtype=np.int64))].reshape(shape)
            values[name] = np.rint(part).astype(np.int64) if dtype_kind == "i" else part.copy()
            at += part.size
        out[key] = kind(**spec, **values)
    return out


def add_replies(replies: Iterable[Mapping[str, np.ndarray]]) -> dict[str, AuditSums]:
    """{key: summed sums} over the clients' replies; every reply must carry the same keys."""
    total: dict[str, AuditSums] | None = None
    for i, reply in enumerate(replies):
        part = unpack(reply)
        if total is None:
            total = part
            continue
        if set(part) != set(total):
            raise DataError(
                f"reply {i} carries audit sums {sorted(part)}, the first carried {sorted(total)}; every client "
                "must answer every audit (a missing one would bias the totals)."
            )
        total = {key: total[key] + part[key] for key in total}
    if total is None:
        raise DataError("no replies to add: the audit needs at least one client's sums.")
    return total


def union_labels(parts: Iterable[GroupUtilitySums]) -> tuple[str, ...]:
    """The labels of a sum of ``parts``: theirs when all agree (a fixed vocabulary keeps its
    order), else the sorted union, the order a central audit's ``vocabulary`` gives."""
    vocabularies = {part.labels for part in parts}
    if len(vocabularies) == 1:
        return next(iter(vocabularies))
    return tuple(sorted({label for labels in vocabularies for label in labels}))


def add_by_label_union(replies: Iterable[Mapping[str, np.ndarray]]) -> tuple[dict[str, AuditSums], list[str]]:
    """({key: summed sums}, [keys some reply lacked]) over the clients' replies.

    Group sums are first spread onto the union of the replies' labels (``with_labels``), so
    clients that saw different stores or attribute values add up. A key not in every reply
    is left out of the totals and named instead: summing it over some clients only would
    report part of the population as the whole.
    """
    parts = [unpack(reply) for reply in replies]
    if not parts:
        raise DataError("no replies to add: the audit needs at least one client's sums.")
    shared = set.intersection(*(set(part) for part in parts))
    partial = sorted(set.union(*(set(part) for part in parts)) - shared)
    total: dict[str, AuditSums] = {}
    for key in sorted(shared):
        sums = [part[key] for part in parts]
        if isinstance(sums[0], GroupUtilitySums):
            labels = union_labels(sums)
            sums = [s.with_labels(labels) for s in sums]
        total[key] = sum(sums[1:], sums[0])
    return total, partial
