"""Which items are near which: in the model's own item space (``Recommender.item_vectors``:
MF item embeddings, the LSTM's output embeddings), its item-item table
(``Recommender.item_similarities``: ItemKNN's similarity matrix) or, for items the model has
no row of its own for, by the catalog attributes they share (brand, category, Beauty's
attribute ids). Both are post-processing of what the release already holds: model parameters
and the public catalog, never counts from shopping data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fedrec.models.base import Recommender
from fedrec.serving.catalog import Catalog


@dataclass
class ItemSpace:
    """Unit item vectors from the model (row 0 and rows of items without their own vector
    are zero); ``own[i]``: item i has a vector the model learnt for it alone."""

    vectors: torch.Tensor  # (n + 1, d), unit rows
    own: np.ndarray  # (n + 1,) bool
    description: str  # how a reason names the space

    def nearest(self, item: int, k: int) -> list[tuple[int, float]]:
        """Up to k (item, cosine) pairs, best first, among items with their own vector."""
        if not self.own[item]:
            return []
        cosine = self.vectors @ self.vectors[item]
        cosine[torch.from_numpy(~self.own)] = -torch.inf
        cosine[item] = -torch.inf
        count = min(k, int(self.own.sum()) - 1)
        if count <= 0:
            return []
        top = torch.topk(cosine, count)
        return [(int(i), float(c)) for c, i in zip(top.values, top.indices)]

    def closest_of(self, basket: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``items``: the basket item nearest to it and their cosine."""
        cosine = self.vectors[torch.from_numpy(basket)] @ self.vectors[torch.from_numpy(items)].T  # (B, K)
        best = torch.max(cosine, dim=0)
        return basket[best.indices.numpy()], best.values.numpy()


def item_space(model: Recommender) -> ItemSpace | None:
    """The model's item vectors, or None for models without any (pop, itemknn)."""
    vectors = model.item_vectors()
    return None if vectors is None else ItemSpace(vectors.vectors, vectors.own, vectors.description)


def similarity_table(model: Recommender) -> SimilarityTable | None:
    """The model's item-item table, or None for models without one."""
    matrix = model.item_similarities()
    return None if matrix is None else SimilarityTable(matrix)


class SimilarityTable:
    """A model's item-item table (ItemKNN's similarity matrix): row i holds item i's kept neighbours."""

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix: sp.csr_matrix = matrix.tocsr()
        self.columns: sp.csc_matrix = self.matrix.tocsc()

    def nearest(self, item: int, k: int) -> list[tuple[int, float]]:
        start, stop = self.matrix.indptr[item], self.matrix.indptr[item + 1]
        cols, values = self.matrix.indices[start:stop], self.matrix.data[start:stop]
        keep = (values > 0) & (cols != item) & (cols > 0)
        cols, values = cols[keep], values[keep]
        order = np.lexsort((cols, -values))[:k]
        return [(int(cols[i]), float(values[i])) for i in order]

    def closest_of(self, basket: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``items``: the basket item whose neighbour it is most strongly, and how strongly."""
        block = self.matrix[basket][:, items].toarray()  # (B, K)
        best = block.argmax(axis=0)
        return basket[best], block[best, np.arange(len(items))]


class AttributeIndex:
    """Items by the catalog attribute tokens they have, for attribute neighbours."""

    def __init__(self, catalog: Catalog, popularity_rank: np.ndarray) -> None:
        self.catalog = catalog
        self.rank = popularity_rank  # (n + 1,) smaller = more popular (tie-break)
        postings: dict[str, list[int]] = defaultdict(list)
        for item, tokens in enumerate(catalog.attributes):
            for token in tokens:
                postings[token].append(item)
        self.postings = {token: np.asarray(items, dtype=np.int64) for token, items in postings.items()}

    def nearest(self, item: int, k: int) -> list[tuple[int, int]]:
        """Up to k (item, shared attribute count) pairs, most shared first, then most popular."""
        shared = np.zeros(self.catalog.n_items + 1, dtype=np.int64)
        for token in self.catalog.attributes[item]:
            np.add.at(shared, self.postings[token], 1)
        shared[item] = 0
        candidates = np.flatnonzero(shared)
        order = np.lexsort((self.rank[candidates], -shared[candidates]))[:k]
        return [(int(candidates[i]), int(shared[candidates[i]])) for i in order]
