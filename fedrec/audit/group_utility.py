"""HR@k and NDCG@k per customer group, with Poisson-bootstrap intervals, from addable sums.

Utility is fedrec.metrics' leave-one-out utility: a user hits when the held-out item's
0-based full-ranking rank is below k, and gains 1/log2(rank + 2) then (one relevant item,
so the ideal DCG is 1). Per group g (fairlearn's MetricFrame ``by_group``):

    HR@k(g)   = hits(g) / users(g)                          range [0, 1], higher is better
    NDCG@k(g) = sum of gains(g) / users(g)                  range [0, 1], higher is better
    difference = max_g - min_g      (fairlearn's difference())  [0, 1], 0 = equal utility
    ratio      = min_g / max_g      (fairlearn's ratio())       [0, 1], 1 = equal utility

over the groups with at least ``min_group_size`` users; smaller groups are suppressed (no
value, no count, not in the gap), TFMA's ``min_slice_size``; a label without users (a fixed
vocabulary's) is not a group at all.

The sums are integer histograms of the rank, capped at k ("missed"), per group, and the
same histogram with each user counted w_b(u) times in replicate b (fedrec.audit.bootstrap).
Hits, gains and counts all follow from them, so clients' shares add exactly and a
federated audit equals the central one to the last bit, intervals included. Clients that
saw different labels (one store each) spread their sums onto the union first
(``with_labels``: an absent label is a group of 0 users). ``UtilitySums`` is the same
histogram over all users without replicates: the headline HR@k of the model or a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from fedrec.audit.bootstrap import check_quantiles, customer_hashes, percentile_interval, weighted_cell_sums
from fedrec.audit.exposure import position_weights
from fedrec.audit.groupings import encode
from fedrec.audit.sums import AuditSums, number
from fedrec.errors import ConfigError, DataError

DEFAULT_K = 10
DEFAULT_N_BOOT = 200
DEFAULT_QUANTILES = (2.5, 97.5)
ALL_USERS = "all"

G = TypeVar("G", bound="GroupUtilitySums")


@dataclass(frozen=True, eq=False)
class GroupUtilitySums(AuditSums):
    """Per-group histograms of the held-out item's rank (0..k-1, then k = missed), addable."""

    KIND: ClassVar[str] = "group-utility"
    ARRAYS: ClassVar[tuple[str, ...]] = ("rank_counts", "boot_rank_counts")

    name: str  # the grouping: "activity", "store", "age-band", ...
    labels: tuple[str, ...]  # the groups, in the order of the arrays' group axis
    k: int
    n_boot: int
    seed: int
    rank_counts: np.ndarray  # (G, k + 1) int64: users of group g with rank r (column k: rank >= k)
    boot_rank_counts: np.ndarray  # (n_boot, G, k + 1) int64: the same, user u counted w_b(u) times

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"grouping name {self.name!r}: give a non-empty name without '/', e.g. 'store'.")
        self.check_shapes()

    @classmethod
    def shapes(cls, spec: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        shape = (len(spec["labels"]), int(spec["k"]) + 1)
        return {"rank_counts": (shape, "i"), "boot_rank_counts": ((int(spec["n_boot"]), *shape), "i")}

    @property
    def key(self) -> str:
        return f"{self.KIND}/{self.name}"

    # The brief's per-group sums, all read off the histograms.
    @property
    def counts(self) -> np.ndarray:
        """(G,) users per group."""
        return self.rank_counts.sum(axis=-1)

    @property
    def hits(self) -> np.ndarray:
        """(G,) users whose held-out item ranks below k."""
        return self.rank_counts[..., :-1].sum(axis=-1)

    @property
    def ndcg_sums(self) -> np.ndarray:
        """(G,) summed NDCG@k gains."""
        return self.rank_counts[..., :-1] @ position_weights(self.k)

    @property
    def boot_counts(self) -> np.ndarray:
        """(n_boot, G) weighted users per replicate."""
        return self.boot_rank_counts.sum(axis=-1)

    @property
    def boot_hits(self) -> np.ndarray:
        return self.boot_rank_counts[..., :-1].sum(axis=-1)

    @property
    def boot_ndcg_sums(self) -> np.ndarray:
        return self.boot_rank_counts[..., :-1] @ position_weights(self.k)

    def with_labels(self: G, labels: Sequence[str]) -> G:
        """The same sums over a larger vocabulary (absent labels count 0 users), so replies
        whose clients saw different label sets add up; a label it holds may not be dropped."""
        labels = tuple(str(label) for label in labels)
        if labels == self.labels:
            return self
        index = {label: i for i, label in enumerate(labels)}
        missing = [label for label in self.labels if label not in index]
        if missing or len(index) != len(labels):
            raise DataError(f"{self.key}: labels {missing[:5] or list(labels)[:5]} cannot be relabelled onto "
                            f"{list(labels)[:10]}; give each label once and every label the sums hold.")
        rows = np.array([index[label] for label in self.labels], dtype=np.int64)
        counts = np.zeros((len(labels), self.k + 1), dtype=np.int64)
        counts[rows] = self.rank_counts
        boot = np.zeros((self.n_boot, len(labels), self.k + 1), dtype=np.int64)
        boot[:, rows] = self.boot_rank_counts
        return replace(self, labels=labels, rank_counts=counts, boot_rank_counts=boot)


@dataclass(frozen=True, eq=False)
class UtilitySums(GroupUtilitySums):
    """One population's rank histogram, no replicates: the audit's headline HR@k of the model
    or of the popularity baseline (its own kind, so no grouping name can collide with it)."""

    KIND: ClassVar[str] = "utility"


def utility_sums(target_ranks: np.ndarray, *, name: str, k: int = DEFAULT_K) -> UtilitySums:
    """Rank histogram (capped at k) of every user, as one group "all" without bootstrap."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r}: give the cut-off of the top-k lists, a whole number >= 1 (e.g. 10).")
    ranks = np.asarray(target_ranks).astype(np.int64).reshape(-1)
    if ranks.size and ranks.min() < 0:
        raise DataError(f"target rank {ranks.min()} is negative; ranks are 0-based (fedrec.metrics.target_ranks).")
    counts = np.bincount(np.minimum(ranks, k), minlength=k + 1).astype(np.int64).reshape(1, k + 1)
    return UtilitySums(name=name, labels=(ALL_USERS,), k=int(k), n_boot=0, seed=0, rank_counts=counts,
                       boot_rank_counts=np.zeros((0, 1, k + 1), dtype=np.int64))


def hit_rate(sums: GroupUtilitySums) -> float | None:
    """HR@k over every user the sums hold; None without users."""
    users = int(sums.counts.sum())
    return float(sums.hits.sum() / users) if users else None


def group_utility_sums(target_ranks: np.ndarray, groups: np.ndarray, customer_keys: Iterable[object], *,
                       labels: Sequence[str], name: str, k: int = DEFAULT_K, n_boot: int = DEFAULT_N_BOOT,
                       seed: int = 0) -> GroupUtilitySums:
    """Sums of one grouping over this client's users.

    target_ranks: (U,) 0-based full-ranking rank of each user's held-out item
        (fedrec.metrics.target_ranks; a CPU tensor works too).
    groups: (U,) each user's label (fedrec.audit.groupings); labels: the shared vocabulary.
    customer_keys: (U,) raw customer ids or pseudonyms, the bootstrap's resampling unit.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r}: give the cut-off of the top-k lists, a whole number >= 1 (e.g. 10).")
    ranks = np.asarray(target_ranks).astype(np.int64).reshape(-1)
    if ranks.size and ranks.min() < 0:
        raise DataError(f"target rank {ranks.min()} is negative; ranks are 0-based (fedrec.metrics.target_ranks).")
    codes = encode(groups, labels)
    hashes = customer_hashes(customer_keys)
    if not len(codes) == len(ranks) == len(hashes):
        raise DataError(
            f"{len(ranks)} target ranks, {len(codes)} group labels and {len(hashes)} customer keys; "
            "give one of each per evaluated user, in the same order."
        )
    n_cells = len(labels) * (k + 1)
    cells = codes * (k + 1) + np.minimum(ranks, k)
    boot = weighted_cell_sums(hashes, cells, n_cells=n_cells, seed=seed, n_boot=n_boot)
    return GroupUtilitySums(
        name=name, labels=tuple(str(label) for label in labels), k=int(k), n_boot=int(n_boot), seed=int(seed),
        rank_counts=np.bincount(cells, minlength=n_cells).astype(np.int64).reshape(len(labels), k + 1),
        boot_rank_counts=boot.reshape(n_boot, len(labels), k + 1),
    )


def finish_group_utility(sums: GroupUtilitySums, *, min_group_size: int,
                         quantiles: Sequence[float] = DEFAULT_QUANTILES) -> dict[str, Any]:
    """Per-group HR@k / NDCG@k with percentile intervals, and the worst-to-best gap.

    Returns a JSON-able dict: grouping, k, n_boot, seed, quantiles, min_group_size;
    ``groups`` {label: {users, hr@k, hr@k_ci, ndcg@k, ndcg@k_ci}} for reported groups, in
    vocabulary order; ``suppressed`` [labels below min_group_size]; ``gaps`` {metric:
    {difference, difference_ci, ratio, ratio_ci, worst, best}} (None with < 2 groups).
    An interval is [low, high] at the given percentiles, None without replicates.
    """
    if not isinstance(min_group_size, (int, np.integer)) or min_group_size < 1:
        raise ConfigError(f"min_group_size={min_group_size!r}: give the smallest group to report, >= 1 users.")
    quantiles = check_quantiles(quantiles)
    counts = sums.counts
    shown = np.flatnonzero(counts >= min_group_size)
    metrics = {
        f"hr@{sums.k}": (sums.hits, sums.boot_hits),
        f"ndcg@{sums.k}": (sums.ndcg_sums, sums.boot_ndcg_sums),
    }
    values, replicates = {}, {}
    for metric, (total, boot_total) in metrics.items():
        values[metric] = total[shown] / counts[shown]
        with np.errstate(invalid="ignore", divide="ignore"):  # a replicate may weight a group to 0 users
            replicates[metric] = boot_total[:, shown] / sums.boot_counts[:, shown]
    groups: dict[str, Any] = {}
    for j, g in enumerate(shown):
        entry: dict[str, Any] = {"users": int(counts[g])}
        for metric in metrics:
            entry[metric] = number(values[metric][j])
            entry[f"{metric}_ci"] = _interval(replicates[metric][:, j], quantiles)
        groups[sums.labels[g]] = entry
    return {
        "audit": sums.KIND, "grouping": sums.name, "k": sums.k, "n_boot": sums.n_boot, "seed": sums.seed,
        "quantiles": list(quantiles), "min_group_size": int(min_group_size),
        "groups": groups,
        "suppressed": [sums.labels[g] for g in np.flatnonzero((counts > 0) & (counts < min_group_size))],
        "gaps": {metric: _gap(values[metric], replicates[metric], [sums.labels[g] for g in shown], quantiles)
                 for metric in metrics},
    }


def _gap(values: np.ndarray, replicates: np.ndarray, labels: list[str], quantiles) -> dict[str, Any] | None:
    """fairlearn's difference (max - min) and ratio (min / max) over the reported groups."""
    if len(values) < 2:
        return None
    worst, best = int(np.argmin(values)), int(np.argmax(values))
    high, low = values[best], values[worst]
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_high, boot_low = replicates.max(axis=1), replicates.min(axis=1)  # NaN where a group has no users
        boot_ratio = boot_low / boot_high
    return {
        "difference": number(high - low), "difference_ci": _interval(boot_high - boot_low, quantiles),
        "ratio": number(low / high) if high > 0 else None, "ratio_ci": _interval(boot_ratio, quantiles),
        "worst": labels[worst], "best": labels[best],
    }


def _interval(replicates: np.ndarray, quantiles: Sequence[float]) -> list[float | None] | None:
    if not replicates.size or np.isnan(replicates).all():
        return None
    return [number(v) for v in percentile_interval(replicates, quantiles)]
