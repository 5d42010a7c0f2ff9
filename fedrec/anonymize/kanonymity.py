"""k-anonymity (and optional l-diversity) at the customer level, by local recoding.

The unit is the output user: one row per customer (per store and customer when stores are
not linked), holding one value per quasi-identifier. An equivalence class is the customers
of one store that publish the same values. Everyone starts at the finest level of every
hierarchy; customers in classes of k or more (with l distinct sensitive values, when asked)
keep those values. The rest move one attribute up one level, chosen greedily as the step
that lets the most of them reach a class of k, and the search repeats on them alone. Who is
left when every attribute is "*" is suppressed; when a store's suppressed customers are
fewer than k, its smallest classes join them until they are k.

So only customers in small classes lose detail. A class accepted by the search can only
grow afterwards (a later customer publishing the same labels joins it), and the result is
checked once more on the published labels before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from fedrec.anonymize.hierarchies import SUPPRESSED, Level, vocabulary
from fedrec.errors import ConfigError


@dataclass(frozen=True)
class Recoding:
    """What each customer publishes, and the classes that makes."""

    levels: np.ndarray  # (n_customers, n_qi) the level each customer publishes per attribute
    label_ids: list[np.ndarray]  # per attribute: (n_customers,) index of the published label in...
    vocabularies: list[np.ndarray]  # ...per attribute: every label of its hierarchy (object)
    class_of: np.ndarray  # (n_customers,) class index
    class_sizes: np.ndarray  # (n_classes,)
    suppressed: np.ndarray  # (n_customers,) bool: every attribute suppressed
    k: int  # smallest class
    l: int | None  # fewest distinct values of a sensitive attribute in a class (None: not asked)

    def labels(self, j: int) -> np.ndarray:
        """The published text of attribute ``j``, one per customer."""
        return self.vocabularies[j][self.label_ids[j]]


def k_anonymize(hierarchies: Sequence[Sequence[Level]], *, k: int, groups: np.ndarray,
                group_names: Sequence[str] = (), sensitive: Sequence[np.ndarray] = (),
                l: int | None = None) -> Recoding:
    """Levels for every customer so that each class (within its group, the store) has at
    least ``k`` customers and, when ``l`` is given, ``l`` distinct values of each sensitive
    attribute (``sensitive``: one integer code array per attribute)."""
    n = len(groups)
    _check_feasible(n, k=k, groups=groups, group_names=group_names, sensitive=sensitive, l=l)
    search = _Search(hierarchies, k=k, groups=groups, sensitive=sensitive, l=l)
    top = tuple(len(h) - 1 for h in hierarchies)
    levels = np.empty((n, len(hierarchies)), dtype=np.int8)
    pending = np.arange(n)
    current = tuple(0 for _ in hierarchies)
    while True:
        ok = search.satisfied(pending, current)
        levels[pending[ok]] = current
        pending = pending[~ok]
        if pending.size == 0 or current == top:
            break
        current = search.next_step(pending, current, top)
    levels[pending] = top
    suppressed = np.zeros(n, dtype=bool)
    suppressed[pending] = True
    return search.finish(levels, suppressed, top)


class _Search:
    """The class arithmetic of one table: integer codes in, class sizes out."""

    def __init__(self, hierarchies, *, k, groups, sensitive, l):
        self.hierarchies, self.k, self.groups, self.sensitive, self.l = hierarchies, k, groups, sensitive, l
        self.vocabularies = [vocabulary(list(h)) for h in hierarchies]

    def satisfied(self, units: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
        """Which of ``units`` sit in a good class when all of them publish ``levels``."""
        columns = [self.groups[units], *(h[lv].codes[units] for h, lv in zip(self.hierarchies, levels))]
        return self._good(class_ids(columns), units)

    def next_step(self, units: np.ndarray, current: tuple[int, ...], top: tuple[int, ...]) -> tuple[int, ...]:
        """Raise the attribute whose next level frees the most of ``units``; on a tie, the
        one with the most distinct values among them (the most fragmenting)."""
        best, best_score = None, None
        for j, level in enumerate(current):
            if level == top[j]:
                continue
            candidate = (*current[:j], level + 1, *current[j + 1:])
            freed = int(self.satisfied(units, candidate).sum())
            spread = int(np.count_nonzero(np.bincount(self.hierarchies[j][level].codes[units])))
            if best_score is None or (freed, spread) > best_score:
                best, best_score = candidate, (freed, spread)
        return best

    def finish(self, levels: np.ndarray, suppressed: np.ndarray, top: tuple[int, ...]) -> Recoding:
        """Publish, fold small suppressed groups into their store's smallest classes, check."""
        classes = self._published_classes(levels)
        good = self._good(classes, slice(None))
        for cls in np.unique(classes[~good]):
            members = np.flatnonzero(classes == cls)
            if not suppressed[members].any() and not self._all_suppressed(levels, members):
                raise RuntimeError("k-anonymity search left a small class that is not suppressed")  # a bug, not bad input
            absorbed = self._absorb(classes, cls, members)
            levels[absorbed] = top
            suppressed[absorbed] = True
        classes = self._published_classes(levels)
        if not self._good(classes, slice(None)).all():
            raise RuntimeError("k-anonymity check failed after suppression")  # a bug, not bad input
        sizes = np.bincount(classes)
        l_min = min(int(_distinct_per_class(classes, s).min()) for s in self.sensitive) if self.l else None
        ids = [self._label_ids(j, levels[:, j]) for j in range(len(self.hierarchies))]
        return Recoding(levels, ids, [v for v, _ in self.vocabularies], classes, sizes, suppressed,
                        int(sizes.min()), l_min)

    def _absorb(self, classes: np.ndarray, cls: int, members: np.ndarray) -> np.ndarray:
        """Whole classes of the same store, smallest first, until the suppressed one is good."""
        group = self.groups[members[0]]
        in_group = np.flatnonzero(self.groups == group)
        others = pd.Series(classes[in_group]).value_counts(sort=False)
        others = others[others.index != cls].sort_values(kind="stable")
        taken = [members]
        seen = [set(s[members].tolist()) for s in self.sensitive]
        for other in others.index:
            count = sum(len(t) for t in taken)
            if count >= self.k and (not self.l or all(len(v) >= self.l for v in seen)):
                break
            more = in_group[classes[in_group] == other]
            taken.append(more)
            for values, s in zip(seen, self.sensitive):
                values.update(s[more].tolist())
        return np.concatenate(taken)

    def _published_classes(self, levels: np.ndarray) -> np.ndarray:
        """Classes of the published text (equal labels from different levels count as equal)."""
        return class_ids([self.groups, *(self._label_ids(j, levels[:, j]) for j in range(len(self.hierarchies)))])

    def _label_ids(self, j: int, chosen: np.ndarray, customers: np.ndarray | None = None) -> np.ndarray:
        """Vocabulary index of the label each customer publishes for attribute ``j``."""
        customers = np.arange(len(chosen)) if customers is None else customers
        out = np.empty(len(chosen), dtype=np.int64)
        for level_index, level in enumerate(self.hierarchies[j]):
            where = np.flatnonzero(chosen == level_index)
            out[where] = self.vocabularies[j][1][level_index][level.codes[customers[where]]]
        return out

    def _all_suppressed(self, levels: np.ndarray, members: np.ndarray) -> bool:
        return all((self.vocabularies[j][0][self._label_ids(j, levels[members, j], members)] == SUPPRESSED).all()
                   for j in range(len(self.hierarchies)))

    def _good(self, classes: np.ndarray, units: np.ndarray | slice) -> np.ndarray:
        """Per customer: is their class big (and diverse) enough? ``units`` picks the customers
        ``classes`` describes."""
        sizes = np.bincount(classes)
        ok = sizes[classes] >= self.k
        if self.l:
            for values in self.sensitive:
                ok &= _distinct_per_class(classes, values[units])[classes] >= self.l
        return ok


def class_ids(columns: Sequence[np.ndarray]) -> np.ndarray:
    """0-based ids of the distinct rows of several integer code columns."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    cardinality = 1
    for column in columns:
        width = int(column.max()) + 1 if column.size else 1
        if cardinality * width >= 2**62:  # keep the mixed-radix key inside int64
            key, uniques = pd.factorize(key)
            cardinality = len(uniques)
        key = key * width + column
        cardinality *= width
    return pd.factorize(key)[0]


def _distinct_per_class(classes: np.ndarray, values: np.ndarray) -> np.ndarray:
    pairs = class_ids([classes, values])
    _, first = np.unique(pairs, return_index=True)
    return np.bincount(classes[first], minlength=int(classes.max()) + 1)


def _check_feasible(n, *, k, groups, group_names, sensitive, l) -> None:
    if k < 2:
        raise ConfigError(f"k={k}: k-anonymity needs k >= 2 (k=1 hides no one). Pass --k 2 or more; 5 is usual.")
    if k > n:
        raise ConfigError(f"k={k} is larger than the {n} customers left after opt-outs; pass a smaller --k.")
    sizes = np.bincount(groups)
    small = np.flatnonzero((sizes > 0) & (sizes < k))
    if small.size:
        name = group_names[small[0]] if len(group_names) else str(small[0])
        raise ConfigError(
            f"store {name!r} has {sizes[small[0]]} customers, fewer than k={k}: no class there can reach k. "
            f"Pass a smaller --k, or anonymize with --link-stores ({small.size} store(s) affected)."
        )
    if l is not None:
        if l < 2:
            raise ConfigError(f"l={l}: l-diversity needs l >= 2; omit it to skip l-diversity.")
        if not sensitive:
            raise ConfigError("l-diversity asked, but no column has the role 'sensitive'; declare one in the schema.")
        for values in sensitive:
            distinct = _distinct_per_class(groups, values)
            if (distinct[sizes > 0] < l).any():
                raise ConfigError(f"l={l}: a store has fewer than {l} distinct sensitive values; pass a smaller l.")
