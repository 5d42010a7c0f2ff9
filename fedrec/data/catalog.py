"""A shared item catalog: every client must number items the same way.

Item embeddings are shared and averaged row by row, so item 7 on one store must be item 7
on every other. In simulation all clients read the same file; on separate machines each
reads its own log, and this maps its items onto the catalog's ids.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from fedrec.data.interactions import IdMap, Interactions
from fedrec.errors import DataError

log = logging.getLogger("fedrec.data")


def align_to_catalog(data: Interactions, catalog: IdMap, *, min_interactions: int = 3) -> Interactions:
    """Renumber ``data``'s items by ``catalog``; items it lacks are dropped and counted."""
    if np.array_equal(data.items.raw, catalog.raw):
        return data
    known = {raw: i for i, raw in enumerate(catalog.raw, start=catalog.offset)}
    local_raw = data.items.raw
    translate = np.array([0] + [known.get(raw, -1) for raw in local_raw], dtype=np.int64)
    sequences, ratings, keep_users, unknown = [], [], [], 0
    for user, seq in enumerate(data.sequences):
        mapped = translate[seq]
        in_catalog = mapped >= 0
        unknown += int((~in_catalog).sum())
        if in_catalog.sum() >= min_interactions:
            sequences.append(mapped[in_catalog])
            keep_users.append(user)
            if data.ratings is not None:
                ratings.append(data.ratings[user][in_catalog])
    if not sequences:
        raise DataError(
            f"{data.source}: none of its items are in the shared item catalog; is the catalog "
            "(--item-catalog) the one the federation was started with?"
        )
    dropped = dict(data.dropped)
    if unknown:
        dropped["items_not_in_catalog"] = unknown
        log.warning("%s: %d interactions with items outside the shared catalog were dropped", data.source, unknown)
    if len(keep_users) < data.n_users:
        dropped["users_short_after_catalog"] = data.n_users - len(keep_users)
    keep = np.asarray(keep_users, dtype=np.int64)
    return dataclasses.replace(
        data,
        sequences=sequences,
        users=IdMap(raw=data.users.raw[keep], offset=0),
        items=catalog,
        stores=None if data.stores is None else data.stores[keep],
        ratings=None if data.ratings is None else ratings,
        user_attributes=None if data.user_attributes is None else _renumber(data.user_attributes, keep),
        item_attributes=None,  # the catalog's owner holds item attributes; a client's are partial
        dropped=dropped,
    )


def _renumber(frame, keep: np.ndarray):
    """Rows of kept users, re-indexed 0..k-1 in the same order as the kept sequences."""
    present = frame.reindex(keep)
    present.index = np.arange(len(keep))
    return present
