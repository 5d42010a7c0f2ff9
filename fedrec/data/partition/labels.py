"""Each user's label for the label-skew store split: their taste, from item attributes or popularity."""

from __future__ import annotations

from itertools import chain

import numpy as np
import pandas as pd

from fedrec.data.interactions import Interactions

POPULARITY_BANDS = 20  # labels when items have no attributes: equal-interaction popularity bands


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
    if not has_attribute_lists(data):
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


def has_attribute_lists(data: Interactions) -> bool:
    """Sequence files bring an ``attributes`` list per item; a log's own item columns do not."""
    return data.item_attributes is not None and "attributes" in data.item_attributes.columns


# --- helpers -----------------------------------------------------------------------------


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


def _ranges(n: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [0..n0), [0..n1), ..."""
    return np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
