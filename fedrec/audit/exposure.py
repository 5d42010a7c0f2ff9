"""Item exposure in the top-k lists: the addable sums behind the popularity and provider audits.

Each filled slot of a user's top-k list gives its item exposure ``1 / log2(rank + 2)``
(rank 0-based: 1 at the top, 0.63 second, 0.29 tenth), the discount NDCG uses, so a slot
counts as much exposure as it would count gain. Item ids are 1..n_items; 0 is padding, an
empty slot that exposes nothing.

``exposure_sums`` keeps per item what both audits need, and nothing per user:

    rec_counts[i]      slots holding item i
    exposure[i]        sum of the position weights of those slots
    profile_weight[i]  sum over users of (times i is in the user's history) / (history length)
    users, profile_users   users with at least one filled slot / a non-empty history

so popularity, the short head and the provider targets can be chosen when finishing (under
DP: the released noisy counts), not on the clients.

``gini`` and ``lorenz_curve`` say how unequally the exposure is spread, as a number and as
the curve behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from fedrec.audit.sums import AuditSums
from fedrec.errors import ConfigError, DataError


def position_weights(k: int) -> np.ndarray:
    """(k,) exposure of ranks 0..k-1: 1 / log2(rank + 2), as NDCG's discount."""
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


@dataclass(frozen=True, eq=False)
class ExposureSums(AuditSums):
    """Per-item slot counts and position-weighted exposure of top-k lists, addable."""

    KIND: ClassVar[str] = "exposure"
    ARRAYS: ClassVar[tuple[str, ...]] = ("users", "rec_counts", "exposure", "profile_users", "profile_weight")

    n_items: int
    k: int
    users: np.ndarray  # () int64
    rec_counts: np.ndarray  # (n_items + 1,) int64
    exposure: np.ndarray  # (n_items + 1,) float64
    profile_users: np.ndarray  # () int64
    profile_weight: np.ndarray  # (n_items + 1,) float64

    def __post_init__(self) -> None:
        self.check_shapes()

    @classmethod
    def shapes(cls, spec: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        items = (int(spec["n_items"]) + 1,)
        return {"users": ((), "i"), "rec_counts": (items, "i"), "exposure": (items, "f"),
                "profile_users": ((), "i"), "profile_weight": (items, "f")}

    @property
    def slots(self) -> int:
        """Filled slots over all users."""
        return int(self.rec_counts[1:].sum())


def exposure_sums(top_items: np.ndarray, histories: Sequence[np.ndarray], *, n_items: int) -> ExposureSums:
    """Exposure sums of (U, K) top-k item ids and the same users' train histories.

    ``histories`` are what each user had consumed (EvalSet.histories), for the popularity of
    consumed items; an item repeated in a history counts each time.
    """
    top = np.asarray(top_items)
    if top.ndim != 2 or top.dtype.kind not in "iu":
        raise DataError(f"top_items has shape {top.shape} and dtype {top.dtype}; expected a (users, k) integer array.")
    if top.size and (top.min() < 0 or top.max() > n_items):
        raise DataError(f"top_items hold ids {top.min()}..{top.max()}; item ids are 1..{n_items}, 0 for an empty slot.")
    if len(histories) != len(top):
        raise DataError(f"{len(histories)} histories for {len(top)} top-k lists; give each evaluated user's history.")
    filled = top > 0
    slot_items = top[filled]
    slot_weights = np.broadcast_to(position_weights(top.shape[1]), top.shape)[filled]
    minlength = n_items + 1
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    consumed = np.concatenate(histories).astype(np.int64) if len(histories) else np.zeros(0, np.int64)
    if consumed.size and (consumed.min() < 1 or consumed.max() > n_items):
        raise DataError(f"histories hold ids {consumed.min()}..{consumed.max()}; item ids are 1..{n_items}.")
    per_interaction = np.repeat(1.0 / np.maximum(lengths, 1), lengths)
    return ExposureSums(
        n_items=int(n_items), k=int(top.shape[1]),
        users=np.array(int(filled.any(axis=1).sum()), dtype=np.int64),
        rec_counts=np.bincount(slot_items, minlength=minlength).astype(np.int64),
        # astype: bincount of nothing is int64 even with float weights (every slot empty)
        exposure=np.bincount(slot_items, weights=slot_weights, minlength=minlength).astype(np.float64),
        profile_users=np.array(int((lengths > 0).sum()), dtype=np.int64),
        profile_weight=np.bincount(consumed, weights=per_interaction, minlength=minlength).astype(np.float64),
    )


def gini(values: np.ndarray) -> float:
    """The usual Gini coefficient of non-negative amounts (RecBole's GiniIndex formula).

    Sorted ascending x_1..x_n: sum_i (2i - n - 1) x_i / (n sum_i x_i). Range [0, (n-1)/n]:
    0 when every entry is equal, (n-1)/n when one entry holds everything. Lower is more
    equal. NaN when everything is 0. Not Elliot's "Gini", which is 1 minus this.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    coefficients = 2.0 * np.arange(1, n + 1) - n - 1
    return float(coefficients @ x / (n * total))


LORENZ_STEPS = 40  # at most 121 points: enough for a picture, small in audit.json


def lorenz_curve(values: np.ndarray, *, steps: int = LORENZ_STEPS) -> tuple[np.ndarray, np.ndarray] | None:
    """(share of entries, share of the total they hold), entries sorted from smallest to largest.

    The Lorenz curve of non-negative amounts, as the picture of ``gini``: it runs from (0, 0)
    to (1, 1), on the diagonal when every entry is equal and along the x axis, rising only at
    the end, when one entry holds everything. The full curve has a vertex per entry, and
    1 - 2 x (its trapezoid area) is exactly ``gini(values)``. Kept are the vertices nearest to
    ``steps`` equal steps in x, and both ends of the segments that cross ``steps`` equal steps
    in y (at most 3 x steps + 1 points), so a long flat start and a steep end both survive:
    one entry holding everything keeps its corner. Dropping vertices of a convex curve only
    raises it, so the kept curve's Gini is at most 1 / steps + 1 / n below ``gini`` (far
    closer on real catalogs; exact with at most ``steps`` entries). None when everything is 0.
    """
    if steps < 1:
        raise ConfigError(f"steps={steps}: give the number of steps of the kept curve, a whole number >= 1.")
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return None
    cumulative = np.concatenate(([0.0], np.cumsum(x) / total))
    cumulative[-1] = 1.0
    by_share = np.round(np.linspace(0, n, steps + 1)).astype(np.int64)
    crossing = np.searchsorted(cumulative, np.linspace(0.0, 1.0, steps + 1), side="left")  # first vertex at or above
    kept = np.unique(np.clip(np.concatenate((by_share, crossing - 1, crossing, [0, n])), 0, n))
    return kept / n, cumulative[kept]
