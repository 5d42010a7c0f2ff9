"""Request and response bodies of the serving API (what /docs shows)."""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from fedrec.serving.recommender import MAX_K

MAX_REQUEST_ITEMS = 10_000  # a body longer than this is not a basket; shorter ones are truncated to what the model reads


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"items": ["279", "790"], "k": 10, "exclude_seen": True, "brand": None, "category": None}]})

    items: list[Union[StrictStr, StrictInt]] = Field(
        default_factory=list, max_length=MAX_REQUEST_ITEMS,
        description="the customer's recent items, the shop's own item ids, oldest first; unknown ids are ignored "
        "and listed in unknown_items; an empty list gets the popularity fallback")
    k: int = Field(10, ge=1, le=MAX_K, description=f"how many items to return, 1 to {MAX_K}")
    exclude_seen: bool = Field(True, description="never return an item of the basket")
    brand: str | None = Field(None, description="only items of this brand (case-insensitive)")
    category: str | None = Field(None, description="only items of this category (case-insensitive)")


class Because(BaseModel):
    kind: str = Field(description="attribute | model | popular")
    item_id: str | None = Field(description="the basket item (recommend) or the asked item (similar) the reason names")
    attributes: dict[str, str] = Field(description="the shared catalog values (brand, category, attributes)")


class AnsweredItem(BaseModel):
    item_id: str
    name: str | None = None
    brand: str | None = None
    category: str | None = None
    score: float = Field(description="the model's score (popularity fallback: the released popularity score; attribute "
                         "neighbours: shared attributes)")
    reason: str
    because: Because


class RecommendResponse(BaseModel):
    items: list[AnsweredItem]
    model: str
    fallback: bool = Field(description="true: no known item in the basket, these are the release's popular items")
    unknown_items: list[str] = Field(description="ids of the request that are not in the catalog (ignored)")
    truncated: bool = Field(description="true: the basket was longer than the model reads; its most recent items were used")
    history_used: int
    notes: list[str]


class SimilarResponse(BaseModel):
    item: dict[str, Any]
    items: list[AnsweredItem]
    model: str
    fallback: bool = Field(description="true: the model has no neighbours of its own for this item; these share catalog attributes")
    notes: list[str]


class Problem(BaseModel):
    detail: str


class CatalogItem(BaseModel):
    item_id: str
    name: str | None = None
    brand: str | None = None
    category: str | None = None


class SearchResponse(BaseModel):
    query: str
    total: int = Field(description="how many catalog items match")
    offset: int
    limit: int
    items: list[CatalogItem] = Field(description="the matches from offset, at most limit of them, catalog columns only")
