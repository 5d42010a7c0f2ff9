"""What a column nobody declared is, from how its values depend on the item, the store and the
customer: deny by default.

A column that no schema declares and no name recognises is published only when the log shows
it cannot describe a person: one value throughout (``CONSTANT``), fixed by the item on a log
where most rows are on items seen more than once and some customer's rows differ (``ITEM``:
brand, size, price list), or fixed by the
store on a log where stores have several customers (``STORE``: region, store city). Anything
else is refused: constant per customer (``CUSTOMER``: an attribute of the person, whatever its
name) or varying from event to event (``EVENT``: a field nobody said is harmless). The whole
log is read, not a sample, but only the key columns and the undeclared ones, and a relation
is dropped from the reading as soon as one counterexample is seen.

Refusals show each value's shape (``"NG14 4LH"`` -> ``"AA99 9AA"``), never the value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedrec.anonymize.tables import Table, decoded

CONSTANT, ITEM, STORE, CUSTOMER, EVENT = "constant", "item attribute", "store attribute", "per customer", "per event"
PASSING = (CONSTANT, ITEM, STORE)
SHAPE_CHARS = 16  # a shape longer than this is cut (the tail of an address says nothing more about its form)
SHAPES_KEPT = 3
SHAPE_SAMPLE = 200  # distinct values whose shapes are counted
ITEMS_REPEAT = 0.25  # share of rows on items seen twice or more: below it, "fixed by the item" shows little


@dataclass(frozen=True)
class ColumnShape:
    """How one undeclared column's values depend on the keys of the log."""

    column: str
    kind: str  # CONSTANT, ITEM, STORE, CUSTOMER or EVENT
    shapes: tuple[str, ...]  # the commonest value shapes, commonest first
    unique_share: float  # distinct values over filled rows in the first batch: near 1 for ids
    why: str = ""  # one clause a person reads in a refusal or the report

    @property
    def passes(self) -> bool:
        return self.kind in PASSING


@dataclass
class _Relation:
    """Unique (key, value) hash pairs seen so far; ``None`` once a key had two values."""

    pairs: pd.DataFrame | None = field(default_factory=lambda: pd.DataFrame({"k": np.zeros(0, np.uint64),
                                                                             "v": np.zeros(0, np.uint64)}))

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        if self.pairs is None:
            return
        seen = pd.concat([self.pairs, pd.DataFrame({"k": keys, "v": values}).drop_duplicates()], ignore_index=True)
        seen = seen.drop_duplicates()  # hashed, not sorted
        self.pairs = None if seen["k"].duplicated().any() else seen

    @property
    def fixed(self) -> bool:
        return self.pairs is not None


def value_shape(value: str) -> str:
    """Upper-case letters -> A, lower-case -> a, digits -> 9, the rest kept; cut at ``SHAPE_CHARS``."""
    out = []
    for ch in value[:SHAPE_CHARS]:
        out.append("9" if ch.isdigit() else "A" if ch.isupper() else "a" if ch.isalpha() else ch)
    return "".join(out) + ("..." if len(value) > SHAPE_CHARS else "")


def column_shapes(table: Table, columns: Sequence[str], *, customer: str, item: str,
                  store: str | None) -> dict[str, ColumnShape]:
    """The kind of each of ``columns`` (undeclared), from one read of the log's key columns and
    theirs. Values are compared by a 64-bit hash of their text; empty values do not count. A
    column stops being read once it depends on nothing (then it is per event)."""
    if not columns:
        return {}
    keys = {"item": item, "customer": customer, **({"store": store} if store else {})}
    relations = {c: {name: _Relation() for name in keys} for c in columns}
    distinct: dict[str, set] = {c: set() for c in columns}
    sample: dict[str, set] = {c: set() for c in columns}
    unique_share: dict[str, float] = {}
    item_rows, customers, stores = pd.Series(dtype="int64"), set(), set()
    open_ = list(columns)
    for batch in table.batches(list(dict.fromkeys([*keys.values(), *columns])), dictionaries=list(columns)):
        hashed = {name: _hashes(batch.column(column)) for name, column in keys.items()}
        if store:
            hashed["customer"] = hashed["customer"] * np.uint64(0x9E3779B97F4A7C15) ^ hashed["store"]  # per store
            stores.update(np.unique(hashed["store"]).tolist())
        customers.update(np.unique(hashed["customer"]).tolist())
        item_rows = item_rows.add(pd.Series(hashed["item"]).value_counts(), fill_value=0)
        for column in list(open_):
            values, has = _hashes(batch.column(column), with_filled=True)
            if column not in unique_share and has.any():
                unique_share[column] = len(np.unique(values[has])) / int(has.sum())
            if len(distinct[column]) <= 2:
                distinct[column].update(np.unique(values[has])[:3].tolist())
            if len(sample[column]) < SHAPE_SAMPLE:
                text = pc.drop_null(pc.unique(pc.cast(decoded(batch.column(column)), pa.string()))).to_pylist()
                sample[column].update([v for v in text if v][: SHAPE_SAMPLE - len(sample[column])])
            for name, relation in relations[column].items():
                relation.add(hashed[name][has], values[has])
            if len(distinct[column]) > 1 and not any(r.fixed for r in relations[column].values()) \
                    and len(sample[column]) >= SHAPE_SAMPLE:
                open_.remove(column)  # per event: nothing later can change that
        if not open_:
            break
    repeated = float(item_rows[item_rows >= 2].sum() / max(1, item_rows.sum()))
    return {c: _shape(c, relations[c], len(distinct[c]), sample[c], unique_share.get(c, 0.0), repeated=repeated,
                      customers=len(customers), stores=len(stores)) for c in columns}


def _shape(column, relation, distinct, sample, unique_share, *, repeated, customers, stores) -> ColumnShape:
    shapes = tuple(s for s, _ in Counter(value_shape(v) for v in sample).most_common(SHAPES_KEPT))
    by_item, by_customer = relation["item"].fixed, relation["customer"].fixed
    by_store = "store" in relation and relation["store"].fixed
    if distinct <= 1:
        kind, why = CONSTANT, "one value throughout" if distinct else "empty throughout"
    elif by_item and not by_customer and repeated >= ITEMS_REPEAT:
        kind, why = ITEM, "fixed by the item, and customers' rows differ"
    elif by_store and customers >= 2 * stores:
        kind, why = STORE, "fixed by the store"
    elif by_customer:
        kind, why = CUSTOMER, ("constant per customer" + (" (and per item: too few events per customer to tell)"
                                                          if by_item else ""))
    else:
        kind, why = EVENT, "varies from event to event"
    return ColumnShape(column, kind, shapes, round(unique_share, 3), why)


def _hashes(values: pa.Array, *, with_filled: bool = False):
    """A 64-bit hash of each value's text (hashed once per distinct value of the batch), and
    with ``with_filled`` whether the value is there (not null, not empty)."""
    encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
    words = np.asarray(pc.cast(decoded(encoded.dictionary), pa.string()).to_pylist(), dtype=object)
    table = pd.util.hash_array(words, categorize=False)
    nulls = encoded.indices.is_null().to_numpy(zero_copy_only=False)
    codes = np.where(nulls, 0, encoded.indices.to_numpy(zero_copy_only=False)).astype(np.int64)
    hashed = table[codes] if len(table) else np.zeros(len(codes), np.uint64)
    if not with_filled:
        return hashed
    empty = nulls | ((words == "")[codes] if len(words) else True)
    return hashed, ~empty
