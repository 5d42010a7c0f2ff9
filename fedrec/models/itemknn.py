"""Item-based k-nearest-neighbour CF (Sarwar et al., WWW 2001; Deshpande & Karypis, 2004).

A user's score for item j is the sum of sim(i, j) over the items i in their history, with
each item keeping only its ``neighbors`` most similar items. ``cosine`` works on implicit
data; ``adjusted-cosine`` subtracts each user's mean rating first, so it needs a ``rating``
column (on all-ones implicit data every centred value is zero).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.models.base import FitResult, Recommender, check_fitted
from fedrec.models.registry import register_model


@register_model
class ItemKNN(Recommender):
    name = "itemknn"

    similarity: sp.csr_matrix | None = None  # (n_items + 1, n_items + 1), row i: neighbours of i

    def fit(self, split: LeaveOneOut) -> FitResult:
        if self.config.similarity not in ("cosine", "adjusted-cosine"):
            raise ConfigError(f"similarity={self.config.similarity!r}: itemknn takes cosine or adjusted-cosine.")
        matrix = self._user_item_matrix(split)
        self.similarity = top_k_rows(cosine_similarity(matrix), self.config.neighbors)
        return FitResult(epochs_run=1, best_epoch=1)

    def _user_item_matrix(self, split: LeaveOneOut) -> sp.csr_matrix:
        rows = np.repeat(np.arange(len(split.train)), [len(s) for s in split.train])
        cols = np.concatenate(split.train)
        if self.config.similarity == "cosine":
            values = np.ones(len(cols), dtype=np.float32)
        else:
            if split.train_ratings is None:
                raise ConfigError(
                    "similarity=adjusted-cosine needs explicit ratings (a 'rating' column in a "
                    "CSV/Parquet log); this data is implicit. Use --similarity cosine."
                )
            ratings = split.train_ratings
            means = np.repeat([r.mean() if len(r) else 0.0 for r in ratings], [len(r) for r in ratings])
            values = (np.concatenate(ratings) - means).astype(np.float32)
        shape = (len(split.train), self.n_items + 1)
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        if self.config.similarity == "cosine":
            matrix.data[:] = 1.0  # repeat interactions count once
        return matrix

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        check_fitted(self, self.similarity is not None)
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate(histories) if len(histories) else np.empty(0, dtype=np.int64)
        seen = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), self.n_items + 1)
        )
        return torch.from_numpy(np.asarray((seen @ self.similarity).todense(), dtype=np.float32))

    def item_similarities(self) -> sp.csr_matrix:
        check_fitted(self, self.similarity is not None)
        return self.similarity

    def state(self) -> dict[str, torch.Tensor]:
        check_fitted(self, self.similarity is not None)
        s = self.similarity
        return {
            "indptr": torch.from_numpy(s.indptr.astype(np.int64)),
            "indices": torch.from_numpy(s.indices.astype(np.int64)),
            "data": torch.from_numpy(s.data.astype(np.float32)),
        }

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        size = self.n_items + 1
        self.similarity = sp.csr_matrix(
            (state["data"].numpy(), state["indices"].numpy(), state["indptr"].numpy()), shape=(size, size)
        )


def cosine_similarity(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Item-item cosine of the columns of a (users x items) matrix, self-similarity removed."""
    co = (matrix.T @ matrix).tocsr().astype(np.float32)  # (items, items)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()).astype(np.float32)
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    sim = sp.diags(inverse) @ co @ sp.diags(inverse)
    sim = sim.tocsr()
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    return sim


def top_k_rows(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties at the cut kept by index order)."""
    indptr, indices, data = [0], [], []
    for row in range(sim.shape[0]):
        start, stop = sim.indptr[row], sim.indptr[row + 1]
        values, cols = sim.data[start:stop], sim.indices[start:stop]
        if len(values) > k:
            keep = np.argpartition(-values, k - 1)[:k]
            values, cols = values[keep], cols[keep]
        indices.append(cols)
        data.append(values)
        indptr.append(indptr[-1] + len(values))
    return sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.asarray(indptr)), shape=sim.shape
    )
