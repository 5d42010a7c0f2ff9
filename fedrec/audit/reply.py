"""One client reply carrying every audit's sums, and the server adding the replies.

A reply is a flat ``dict[str, np.ndarray]`` (one Flower ArrayRecord): the concatenation of
each sums object's ``to_arrays()``, whose keys start with the object's key
("group-utility/activity", "group-utility/store", "exposure").
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

from fedrec.audit.exposure import ExposureSums
from fedrec.audit.group_utility import GroupUtilitySums
from fedrec.audit.sums import SPEC, AuditSums, read_spec
from fedrec.errors import DataError

KINDS = MappingProxyType({cls.KIND: cls for cls in (GroupUtilitySums, ExposureSums)})


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
