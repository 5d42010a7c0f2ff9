"""A loaded release answering requests in the shop's own item ids: a basket (oldest
first) -> ranked items with scores and reasons; an item -> its nearest items.

Pure of HTTP: the app (``fedrec.serving.app``) turns ``RequestProblem`` into a 4xx. Unknown
ids are ignored and listed, long baskets keep their most recent items, a basket the model
knows nothing of gets the release's popularity fallback; every such case is flagged in
the answer, and said in ``notes``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from fedrec.serving import reasons
from fedrec.serving.catalog import Catalog
from fedrec.serving.fold_in import ClosedFormFoldIn
from fedrec.serving.neighbours import AttributeIndex, item_space, similarity_table
from fedrec.serving.release_loader import Release

MAX_K = 100
MAX_HISTORY = 200  # models without a max_len of their own read at most this many recent items


class RequestProblem(ValueError):
    """A request the release cannot answer as asked; ``status`` is the HTTP status to send."""

    status = 422


class UnknownItem(RequestProblem):
    status = 404


def top_items(scores: np.ndarray, allowed: np.ndarray, tie_break: np.ndarray, k: int) -> np.ndarray:
    """The k allowed items of highest score, ties broken by ``tie_break`` (smaller first):
    a partition finds the k-th score, and only items at or above it are sorted."""
    candidates = np.flatnonzero(allowed)
    values = scores[candidates]
    if len(candidates) > k:
        cut = np.partition(values, len(values) - k)[len(values) - k]
        keep = values >= cut
        candidates, values = candidates[keep], values[keep]
    return candidates[np.lexsort((tie_break[candidates], -values))[:k]]


class ReleaseRecommender:
    """Everything a request needs from one release, computed once at load time."""

    def __init__(self, release: Release) -> None:
        self.release = release
        model = release.model
        self.kind = model.name
        self.catalog = Catalog.from_frame(release.items)
        n = self.catalog.n_items
        # A release keeps no user vectors: models that need one get it folded in from the basket.
        self.scorer = ClosedFormFoldIn(model) if model.item_factors() is not None else model
        max_len = model.history_length()
        self.max_history = int(max_len) if max_len else MAX_HISTORY
        ids = release.popularity.get("item_ids") or [self.catalog.raw[int(i)] for i in release.popularity["items"]]
        scores = release.popularity.get("scores") or [0.0] * len(ids)
        pairs = [(self.catalog.dense[str(r)], float(s)) for r, s in zip(ids, scores) if str(r) in self.catalog.dense]
        self.popular = np.array([i for i, _ in pairs], dtype=np.int64)
        self.popular_scores = {i: s for i, s in pairs}
        self.popularity_rank = np.arange(n + 1, dtype=np.int64) + len(self.popular)  # tie-break: popular first, then id
        self.popularity_rank[self.popular] = np.arange(len(self.popular))
        self.attributes = AttributeIndex(self.catalog, self.popularity_rank)
        self.space = item_space(model)
        self.table = similarity_table(model)
        if n:
            self._scores([1])  # the first request is not the one that pays for lazy set-up

    # --- POST /recommend

    def recommend(self, item_ids: Sequence[str], *, k: int = 10, exclude_seen: bool = True,
                  brand: str | None = None, category: str | None = None) -> dict[str, Any]:
        if not 1 <= k <= MAX_K:
            raise RequestProblem(f"k={k} is out of range: ask for 1 to {MAX_K} items.")
        catalog = self.catalog
        allowed = np.ones(catalog.n_items + 1, dtype=bool)
        allowed[0] = False
        notes = []
        for column, wanted in (("brand", brand), ("category", category)):
            if wanted is None:
                continue
            if not catalog.has_column(column):
                raise RequestProblem(f"{column}={wanted!r}: this release's catalog has no {column} column; drop the filter.")
            allowed &= catalog.matching(column, wanted)
            if not allowed.any():
                notes.append(f"no item in the catalog has {column} {wanted!r} (with the other filters)")
        known, unknown = catalog.lookup([str(i) for i in item_ids])
        if unknown:
            notes.append(f"{len(unknown)} item id(s) are not in this release's catalog and were ignored (unknown_items)")
        if exclude_seen:
            allowed[known] = False
        history = known[-self.max_history :]
        truncated = len(known) > len(history)
        if truncated:
            notes.append(f"the basket has {len(known)} known items; the {len(history)} most recent were used "
                         f"(the {self.kind} model reads at most {self.max_history})")
        answer = {"model": self.kind, "fallback": not history, "unknown_items": unknown, "truncated": truncated,
                  "history_used": len(history), "notes": notes}
        if not history:
            notes.append("no item of the basket is known to this release" if unknown else "the basket is empty")
            answer["items"] = self._fallback(allowed, k, notes, "fallback: no known items in your basket" if item_ids else
                                             "fallback: empty basket")
            return answer
        scores = self._scores(history)
        allowed &= np.isfinite(scores)  # an item a model rules out entirely is never answered (nor is inf sent as JSON)
        chosen = top_items(scores, allowed, self.popularity_rank, k)
        answer["items"] = [{**catalog.describe(int(j)), "score": float(scores[j]), **why}
                           for j, why in zip(chosen, self._reasons(history, chosen))]
        if len(chosen) < k:
            notes.append(f"only {len(chosen)} items are left after the filters and exclusions")
        return answer

    def _scores(self, history: Sequence[int]) -> np.ndarray:
        with torch.inference_mode():
            row = self.scorer.score(np.zeros(1, dtype=np.int64), [np.asarray(history, dtype=np.int64)])[0]
        return row.float().numpy().astype(np.float64)

    def _fallback(self, allowed: np.ndarray, k: int, notes: list[str], detail: str) -> list[dict[str, Any]]:
        chosen = [int(i) for i in self.popular if allowed[i]][:k]
        if len(chosen) < k:
            notes.append(f"the release's popularity fallback holds {len(chosen)} items that pass the filters")
        return [{**self.catalog.describe(i), "score": self.popular_scores[i], **reasons.popular(detail)} for i in chosen]

    def _reasons(self, history: list[int], chosen: np.ndarray) -> list[dict[str, Any]]:
        """Catalog attributes shared with a basket item first; else the model's own link."""
        basket = list(dict.fromkeys(reversed(history)))[::-1]  # distinct, oldest first (most recent occurrence)
        answers: list[dict[str, Any] | None] = [reasons.shared_attributes(self.catalog, int(j), basket) for j in chosen]
        rest = np.array([j for j, a in zip(chosen, answers) if a is None], dtype=np.int64)
        by_model: dict[int, dict[str, Any]] = {}
        if len(rest):
            basket_array = np.asarray(basket, dtype=np.int64)
            if self.table is not None:
                nearest, strength = self.table.closest_of(basket_array, rest)
                for j, b, s in zip(rest, nearest, strength):
                    by_model[int(j)] = (reasons.model_neighbour(self.catalog, int(b), float(s), "the model's item-item similarity")
                                        if s > 0 else reasons.popular("the model links nothing in your basket to it"))
            elif self.release.model.predicts_next_item:
                by_model = {int(j): reasons.follows(self.catalog, history[-1]) for j in rest}
            elif self.space is not None:
                nearest, strength = self.space.closest_of(basket_array, rest)
                for j, b, s in zip(rest, nearest, strength):
                    by_model[int(j)] = reasons.model_neighbour(self.catalog, int(b), float(s), self.space.description)
            else:
                by_model = {int(j): reasons.popular() for j in rest}
        return [a if a is not None else by_model[int(j)] for j, a in zip(chosen, answers)]

    # --- GET /items/{item_id}/similar

    def similar(self, item_id: str, *, k: int = 10) -> dict[str, Any]:
        if not 1 <= k <= MAX_K:
            raise RequestProblem(f"k={k} is out of range: ask for 1 to {MAX_K} items.")
        item = self.catalog.dense.get(str(item_id))
        if item is None:
            raise UnknownItem(f"unknown item id {item_id!r}: it is not in this release's catalog ({self.catalog.n_items} "
                              "items, items.parquet); use the shop's own item ids.")
        if self.table is not None:
            pairs, space = self.table.nearest(item, k), "the model's item-item similarity"
        elif self.space is not None:
            pairs, space = self.space.nearest(item, k), self.space.description
        else:
            pairs, space = [], ""
        items = [{**self.catalog.describe(j), "score": s, **reasons.similar_in_model(self.catalog, item, s, space)}
                 for j, s in pairs]
        notes = []
        if not pairs:
            notes.append(self._why_no_model_neighbours(item))
        if len(items) < k:
            taken = {item, *(j for j, _ in pairs)}
            extra = [(j, s) for j, s in self.attributes.nearest(item, k + len(taken)) if j not in taken][: k - len(items)]
            items += [{**self.catalog.describe(j), "score": float(s), **reasons.similar_by_attributes(self.catalog, item, j)}
                      for j, s in extra]
            if extra:
                notes.append(f"{len(extra)} item(s) are attribute neighbours (shared brand, category or catalog attributes)")
        return {"item": self.catalog.describe(item), "model": self.kind, "fallback": not pairs, "items": items, "notes": notes}

    def _why_no_model_neighbours(self, item: int) -> str:
        if self.table is not None:
            return "the model kept no similar items for this item: attribute neighbours instead"
        if self.space is None:
            return f"a {self.kind} model has no item space: attribute neighbours instead"
        return ("the model learnt this item only inside its shared class of less popular items (the DP vocabulary): "
                "attribute neighbours instead")
