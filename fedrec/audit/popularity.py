"""Popularity bias of top-k lists: ARP against consumed items, long-tail share, coverage, Gini.

Finished from ExposureSums (fedrec.audit.exposure) and a per-item ``popularity`` array the
caller chooses: ``interaction_counts`` of the train histories (every interaction counts,
RecBole's AveragePopularity; Elliot counts distinct users instead), or under DP the
released noisy counts. Negative noisy counts are read as 0. With U users, K slots each:

    arp@K          mean over filled slots of popularity(item)          [0, max pop]
                   (= Elliot's / RecBole's per-user mean when every list is full)
    arp_consumed   mean over users of the mean popularity of their history items
    arp_ratio      arp@K / arp_consumed: > 1 recommends more popular items than users
                   consume (Abdollahpouri et al.'s popularity lift + 1); closer to 1 is better
    aplt@K         share of filled slots holding a long-tail item          [0, 1], higher =
                   more tail (Elliot's APLT); tail = every catalog item outside the short head
    coverage@K     distinct recommended items / n_items                    [0, 1], higher = more
    gini_exposure@K  Gini of position-weighted exposure over all n_items   [0, (n-1)/n],
                   0 = equal exposure, ~1 = all on one item; the usual Gini, not 1 - Gini
    gini_count@K   the same over unweighted slot counts (RecBole's GiniIndex@K)

and two small series for the pictures (fedrec.release.plots):

    exposure_curve@K   the Lorenz curve of position-weighted exposure over all n_items:
                   items sorted from least to most exposed, ``item_share`` (x, [0, 1]) against
                   the ``exposure_share`` (y, [0, 1]) they hold; on the diagonal = equal
                   exposure, hugging the x axis = all on few items; at most 121 points, whose
                   Gini (1 - 2 x trapezoid area) is at most 1/40 + 1/n_items below
                   gini_exposure@K, ~1e-4 on real catalogs (fedrec.audit.exposure.lorenz_curve)
    popularity_deciles@K   the catalog cut into 10 popularity deciles of (nearly) equal item
                   count, least popular first (ties as the short head: the lower id counts as
                   more popular); per decile ``items``, ``popularity_min``/``_max``,
                   ``recommended_share`` (share of filled slots, [0, 1], sums to 1) and
                   ``consumed_share`` (mean over users of the share of their history, as
                   arp_consumed weighs users; [0, 1], sums to 1). Recommended above consumed
                   in the top deciles = the model pushes best-sellers.

The short head is Elliot's: items sorted by popularity (ties by id), taken until they hold
``head_share`` (0.8) of all popularity, the item that crosses the line included. Unlike
Elliot, never-consumed catalog items belong to the tail (Elliot's tail lists only items of
its training matrix).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fedrec.audit.exposure import ExposureSums, gini, lorenz_curve
from fedrec.audit.sums import number
from fedrec.errors import ConfigError, DataError

DEFAULT_HEAD_SHARE = 0.8
DECILES = 10
CURVE_DIGITS = 6  # the curve's coordinates are rounded: a point of a picture, not a measurement


def interaction_counts(histories: Sequence[np.ndarray], *, n_items: int) -> np.ndarray:
    """(n_items + 1,) int64 interactions per item (a repeat counts again); index 0 is 0."""
    consumed = np.concatenate(histories).astype(np.int64) if len(histories) else np.zeros(0, np.int64)
    if consumed.size and (consumed.min() < 1 or consumed.max() > n_items):
        raise DataError(f"histories hold ids {consumed.min()}..{consumed.max()}; item ids are 1..{n_items}.")
    return np.bincount(consumed, minlength=n_items + 1).astype(np.int64)


def short_head(popularity: np.ndarray, *, share: float = DEFAULT_HEAD_SHARE) -> np.ndarray:
    """Sorted ids of the most popular items that together hold ``share`` of all popularity."""
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"head share {share}: give the share of popularity the short head holds, in (0, 1].")
    pop = np.clip(np.asarray(popularity, dtype=np.float64)[1:], 0.0, None)
    total = pop.sum()
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    ids = np.arange(1, pop.size + 1)
    order = np.lexsort((ids, -pop))  # most popular first, ties by item id
    n_head = int(np.searchsorted(np.cumsum(pop[order]), share * total, side="left")) + 1
    return np.sort(ids[order[:min(n_head, pop.size)]])


def finish_popularity(sums: ExposureSums, *, popularity: np.ndarray, head: np.ndarray | None = None,
                      head_share: float = DEFAULT_HEAD_SHARE,
                      popularity_source: str = "interactions") -> dict[str, Any]:
    """The popularity-bias block of an audit report (JSON-able).

    popularity: (n_items + 1,) per-item popularity (index 0 ignored). head: the short-head
    item ids, or None to take ``short_head(popularity, share=head_share)``.
    popularity_source: what ``popularity`` counts, recorded in the report. Besides the
    numbers, ``exposure_curve@k`` and ``popularity_deciles@k`` (module doc) feed the pictures.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.shape != (sums.n_items + 1,):
        raise DataError(
            f"popularity has shape {pop.shape}; expected ({sums.n_items + 1},): one value per item id 0..n_items."
        )
    pop = np.clip(pop, 0.0, None)
    pop[0] = 0.0
    head_ids = short_head(pop, share=head_share) if head is None else np.unique(np.asarray(head, dtype=np.int64))
    if head_ids.size and (head_ids.min() < 1 or head_ids.max() > sums.n_items):
        raise DataError(f"head holds ids {head_ids.min()}..{head_ids.max()}; item ids are 1..{sums.n_items}.")
    in_tail = np.ones(sums.n_items + 1, dtype=bool)
    in_tail[0] = False
    in_tail[head_ids] = False
    k, slots, counts = sums.k, sums.slots, sums.rec_counts
    arp = counts @ pop / slots if slots else float("nan")
    consumed = sums.profile_weight @ pop / sums.profile_users if sums.profile_users else float("nan")
    return {
        "audit": "popularity", "k": k, "users": int(sums.users), "n_items": sums.n_items,
        "popularity_source": popularity_source,
        "head_items": int(head_ids.size), "head_share": None if head is not None else float(head_share),
        f"arp@{k}": number(arp),
        "arp_consumed": number(consumed),
        "arp_ratio": number(arp / consumed) if consumed > 0 else None,
        f"aplt@{k}": number(counts[in_tail].sum() / slots) if slots else None,
        f"coverage@{k}": number(np.count_nonzero(counts[1:]) / sums.n_items) if sums.n_items else None,
        f"gini_exposure@{k}": number(gini(sums.exposure[1:])),
        f"gini_count@{k}": number(gini(counts[1:])),
        f"exposure_curve@{k}": _curve(sums.exposure[1:]),
        f"popularity_deciles@{k}": popularity_deciles(sums, pop),
    }


def popularity_deciles(sums: ExposureSums, popularity: np.ndarray, *, bins: int = DECILES) -> dict[str, list]:
    """Recommended vs consumed share per popularity decile of the catalog (see the module doc).

    popularity: (n_items + 1,) non-negative, index 0 ignored. Decile d holds the items at
    sorted positions [d n / bins, (d + 1) n / bins), least popular first; with fewer items
    than bins some deciles are empty (0 items, None popularity, share 0). A share is None
    throughout when there is nothing to share (no filled slot, no history).
    """
    n = sums.n_items
    pop = np.asarray(popularity, dtype=np.float64)[1:]
    ids = np.arange(1, n + 1)
    order = np.lexsort((-ids, pop))  # least popular first; the reverse of short_head's order
    decile = np.empty(n, dtype=np.int64)
    decile[order] = np.arange(n) * bins // max(n, 1)
    items = np.bincount(decile, minlength=bins)
    low, high = np.full(bins, np.inf), np.full(bins, -np.inf)
    np.minimum.at(low, decile, pop)
    np.maximum.at(high, decile, pop)

    def share(weights: np.ndarray, total: float) -> list[float | None] | None:
        return [number(v) for v in np.bincount(decile, weights=weights, minlength=bins) / total] if total > 0 else None

    return {
        "items": items.tolist(),
        "popularity_min": [number(v) for v in low],
        "popularity_max": [number(v) for v in high],
        "recommended_share": share(sums.rec_counts[1:].astype(np.float64), float(sums.slots)),
        "consumed_share": share(sums.profile_weight[1:], float(sums.profile_users)),
    }


def _curve(exposure: np.ndarray) -> dict[str, list[float]] | None:
    curve = lorenz_curve(exposure)
    if curve is None:
        return None
    x, y = curve
    return {"item_share": np.round(x, CURVE_DIGITS).tolist(), "exposure_share": np.round(y, CURVE_DIGITS).tolist()}
