"""A shop's item columns as the attribute ids fedrec's attribute encoder reads.

Beauty ships its attribute ids (``Beauty_item2attributes.json``). A shop's log and its catalog
(``<stem>_catalog.csv``, public: it describes products, not customers) carry columns instead:
brand, category, price. Each text column whose values repeat across items gives one id per
value; a column with nearly one value per item (the product name, a SKU) names items rather
than grouping them and is left out; each numeric column (price) gives one id per band of
``BANDS`` quantiles over the items. Ids number the sorted ``column=value`` tokens, so every
process reading the same catalog numbers them alike (the server reads it and the ids travel
in the model's state to the stores).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ATTRIBUTES = "attributes"  # the column the models read (Interactions.has_item_attributes)
BANDS = 8
NAMING_SHARE = 0.5  # distinct values over items above which a text column names items, not groups


def with_attribute_ids(items: pd.DataFrame | None) -> pd.DataFrame | None:
    """``items`` (one row per item) with an ``attributes`` column of id lists built from its
    other columns, unless it already has one or no column groups items."""
    if items is None or items.empty or ATTRIBUTES in items.columns:
        return items
    tokens = [_tokens(items[c]) for c in items.columns if _groups_items(items[c])]
    if not tokens:
        return items
    per_item = pd.concat(tokens, axis=1).apply(lambda row: [t for t in row if isinstance(t, str)], axis=1)
    vocabulary = {token: i + 1 for i, token in enumerate(sorted({t for ts in per_item for t in ts}))}
    return items.assign(**{ATTRIBUTES: per_item.map(lambda ts: [vocabulary[t] for t in ts])})


def attribute_columns(items: pd.DataFrame) -> list[str]:
    """The columns ``with_attribute_ids`` reads (for the run's log line and the card)."""
    return [c for c in items.columns if c != ATTRIBUTES and _groups_items(items[c])]


def _groups_items(values: pd.Series) -> bool:
    present = values.dropna()
    if present.empty:
        return False
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        return present.nunique() > 1
    return 1 < present.astype(str).nunique() <= max(2, NAMING_SHARE * len(present))


def _tokens(values: pd.Series) -> pd.Series:
    """``column=value`` per item (``column=band k`` for numbers); None where the value is missing."""
    name = str(values.name)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        edges = np.unique(np.nanquantile(values.to_numpy(dtype=float), np.linspace(0, 1, BANDS + 1)[1:-1]))
        bands = np.searchsorted(edges, values.to_numpy(dtype=float), side="right")
        return pd.Series([None if np.isnan(v) else f"{name}=band {b}" for v, b in zip(values.to_numpy(dtype=float), bands)],
                         index=values.index, dtype=object)
    return values.map(lambda v: None if pd.isna(v) or str(v).strip() == "" else f"{name}={str(v).strip()}")
