"""A short reason for each recommended item, from the public catalog (attributes it shares
with an item of the basket) or from the model's own parameters (the basket item nearest to
it in the model, the item the LSTM read last), never from statistics outside the privacy
accounting (no co-purchase counts from the data). Each reason is a sentence and a
structured ``because`` ({"kind", "item_id", "attributes"}) for pages that lay it out."""

from __future__ import annotations

from typing import Any

from fedrec.serving.catalog import Catalog

POPULAR = "popular in this shop"


def _named(catalog: Catalog, item: int, tokens: frozenset[str]) -> tuple[list[str], dict[str, str]]:
    """'brand (Kaane)', 'category (Skin Care)', 'catalog attributes 12, 40' for shared tokens."""
    parts, values = [], {}
    for column in ("brand", "category"):
        if any(t.startswith(f"{column}:") for t in tokens):
            value = catalog.value(column, item) or ""
            parts.append(f"{column} ({value})")
            values[column] = value
    attributes = sorted((t.partition(":")[2] for t in tokens if t.startswith("attribute:")), key=lambda a: (len(a), a))
    if attributes:
        parts.append(("catalog attribute " if len(attributes) == 1 else "catalog attributes ") + ", ".join(attributes))
        values["attributes"] = " ".join(attributes)
    return parts, values


def shared_attributes(catalog: Catalog, item: int, basket: list[int]) -> dict[str, Any] | None:
    """The reason "same brand (X) as <basket item>": the basket item sharing the most
    attribute tokens with ``item`` (the most recent on ties), or None when none shares any."""
    best, best_shared = None, frozenset()
    for other in reversed(basket):
        shared = catalog.shared(item, other)
        if len(shared) > len(best_shared):
            best, best_shared = other, shared
    if best is None:
        return None
    parts, values = _named(catalog, item, best_shared)
    sentence = (f"same {' and '.join(parts)} as {catalog.label(best)} in your basket" if "attributes" not in values
                else f"shares {' and '.join(parts)} with {catalog.label(best)} in your basket")
    return {"reason": sentence, "because": {"kind": "attribute", "item_id": catalog.raw[best], "attributes": values}}


def model_neighbour(catalog: Catalog, basket_item: int, strength: float, space: str) -> dict[str, Any]:
    return {"reason": f"close to {catalog.label(basket_item)} in your basket ({space}: {strength:.2f})",
            "because": {"kind": "model", "item_id": catalog.raw[basket_item], "attributes": {}}}


def follows(catalog: Catalog, last_item: int) -> dict[str, Any]:
    return {"reason": f"often follows {catalog.label(last_item)} (last in your basket) in the model's next-item predictions",
            "because": {"kind": "model", "item_id": catalog.raw[last_item], "attributes": {}}}


def popular(detail: str | None = None) -> dict[str, Any]:
    return {"reason": POPULAR if detail is None else f"{POPULAR} ({detail})",
            "because": {"kind": "popular", "item_id": None, "attributes": {}}}


def similar_by_attributes(catalog: Catalog, item: int, other: int) -> dict[str, Any]:
    parts, values = _named(catalog, other, catalog.shared(item, other))
    return {"reason": f"same {' and '.join(parts)}" if "attributes" not in values else f"shares {' and '.join(parts)}",
            "because": {"kind": "attribute", "item_id": catalog.raw[item], "attributes": values}}


def similar_in_model(catalog: Catalog, item: int, strength: float, space: str) -> dict[str, Any]:
    return {"reason": f"close to it ({space}: {strength:.2f})",
            "because": {"kind": "model", "item_id": catalog.raw[item], "attributes": {}}}
