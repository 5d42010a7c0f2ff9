"""The release's item index (items.parquet) as serving reads it: the shop's own item ids
<-> the dense ids the model scores, and the catalog columns (name, brand, category, and
Beauty's space-separated ``attributes``) that filters and reasons are drawn from.

Everything here is public catalog data; nothing is learnt from shopping histories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

DISPLAY_COLUMNS = ("name", "brand", "category")  # copied into every answered item when present
MAX_QUERY_CHARS = 100  # a catalog search longer than this is not a product name
MAX_QUERY_WORDS = 8


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _key(value: str | None) -> str | None:
    """Filters compare brand and category case- and space-insensitively."""
    return None if value is None else " ".join(value.casefold().split())


@dataclass
class Catalog:
    """Dense item ids run 1..n (0 is padding); ``raw[i]`` is item i's shop id."""

    raw: list[str]  # index 0: "" (padding)
    dense: dict[str, int]  # shop id -> dense id
    columns: dict[str, list[str | None]]  # display column -> value per dense id (index 0: None)
    attributes: list[frozenset[str]] = field(default_factory=list)  # per dense id: brand/category/attribute tokens
    codes: dict[str, tuple[dict[str, int], np.ndarray]] = field(default_factory=dict)  # filters: normalised value -> code, code per item
    searchable: list[str] = field(default_factory=list)  # per dense id: its shop id and display columns, casefolded

    def __post_init__(self) -> None:
        self.searchable = [""] + ["\n".join(
            [raw.casefold(), *((self.columns[c][i] or "").casefold() for c in DISPLAY_COLUMNS if c in self.columns)])
            for i, raw in enumerate(self.raw[1:], start=1)]
        for name, values in self.columns.items():
            keys = [_key(v) for v in values]
            lookup = {key: code for code, key in enumerate(dict.fromkeys(k for k in keys if k is not None), start=1)}
            self.codes[name] = (lookup, np.array([lookup.get(k, 0) if k is not None else 0 for k in keys], dtype=np.int64))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "Catalog":
        frame = frame.sort_values("item")
        raw = [""] + [str(v) for v in frame["item_id"]]
        columns = {name: [None] + [_text(v) for v in frame[name]] for name in DISPLAY_COLUMNS if name in frame}
        tokens: list[frozenset[str]] = [frozenset()]
        # Attribute ids give reasons only where they are all the catalog says (Beauty); a shop's
        # catalog names its brand and category in words, and its ids repeat them (plus price bands).
        named = "brand" in frame or "category" in frame
        attribute_values = ([None] * len(frame) if "attributes" not in frame or named
                            else [_text(v) for v in frame["attributes"]])
        brands = columns.get("brand", [None] * (len(frame) + 1))
        categories = columns.get("category", [None] * (len(frame) + 1))
        for i in range(1, len(frame) + 1):
            found = set()
            if brands[i]:
                found.add(f"brand:{_key(brands[i])}")
            if categories[i]:
                found.add(f"category:{_key(categories[i])}")
            if attribute_values[i - 1]:
                found.update(f"attribute:{a}" for a in attribute_values[i - 1].split())
            tokens.append(frozenset(found))
        return cls(raw=raw, dense={r: i for i, r in enumerate(raw) if i}, columns=columns, attributes=tokens)

    @property
    def n_items(self) -> int:
        return len(self.raw) - 1

    @property
    def has_attributes(self) -> bool:
        return any(self.attributes)

    def has_column(self, name: str) -> bool:
        return name in self.columns

    def lookup(self, item_ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Dense ids of the known shop ids (order kept) and the unknown ones (first
        occurrence each, order kept)."""
        known, unknown = [], []
        for item_id in item_ids:
            dense = self.dense.get(item_id)
            if dense is None:
                if item_id not in unknown:
                    unknown.append(item_id)
            else:
                known.append(dense)
        return known, unknown

    def value(self, column: str, item: int) -> str | None:
        values = self.columns.get(column)
        return None if values is None else values[item]

    def label(self, item: int) -> str:
        """How a reason names an item: its name when the catalog has one, else its shop id."""
        name = self.value("name", item)
        return f"{name} ({self.raw[item]})" if name else f"item {self.raw[item]}"

    def describe(self, item: int) -> dict[str, str | None]:
        """The answered fields of one item: its shop id and display columns (None when absent)."""
        return {"item_id": self.raw[item], **{name: self.value(name, item) for name in DISPLAY_COLUMNS}}

    def search(self, query: str, *, limit: int, offset: int = 0) -> tuple[int, list[int]]:
        """Catalog search (the page's product finder): items whose shop id, name, brand or
        category contain every word of ``query`` (case-insensitive); an item whose shop id
        is the whole query comes first, the rest in catalog order. Returns the number of
        matches and the dense ids of the page ``offset:offset + limit``; an empty query
        matches the whole catalog. Reads the catalog only."""
        words = query.casefold().split()[:MAX_QUERY_WORDS]
        exact = self.dense.get(query.strip())
        if not words:
            found = range(1, self.n_items + 1)
        else:
            found = [i for i in range(1, self.n_items + 1) if all(w in self.searchable[i] for w in words)]
        if exact is not None:
            found = [exact, *(i for i in found if i != exact)]
        return len(found), list(found[offset : offset + limit])

    def matching(self, column: str, wanted: str) -> np.ndarray:
        """(n + 1,) bool: items whose ``column`` equals ``wanted`` (case-insensitive)."""
        lookup, codes = self.codes[column]
        code = lookup.get(_key(wanted) or "")
        matches = codes == code if code is not None else np.zeros(len(codes), dtype=bool)
        matches[0] = False
        return matches

    def shared(self, a: int, b: int) -> frozenset[str]:
        """The attribute tokens items ``a`` and ``b`` have in common."""
        return self.attributes[a] & self.attributes[b]

