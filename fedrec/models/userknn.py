"""User-based k-nearest-neighbour CF (Resnick et al., CSCW 1994; Herlocker et al., SIGIR 1999).

A user's score for item j is the summed similarity of their ``neighbors`` most similar
training users who have j. The query is the user's history (what ``score`` is given), so a
held-out target never leaks in; the user's own training row is not their own neighbour.

- ``cosine``: of the binary user x item rows (repeats count once);
- ``pearson``: the correlation of those rows over all items. On implicit data a row's mean is
  its share of the catalog, so r(u, v) = (|u & v| - |u||v| / n) / (n s_u s_v), from the same
  sparse products as cosine.

It keeps every customer's history in the model: a centralised baseline, never federated or
released (``releasable`` is False).
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

SIMILARITIES = ("cosine", "pearson")
SCORE_BATCH = 512  # query users per similarity block: (512 x users) float32 is ~45 MB on Beauty


@register_model
class UserKNN(Recommender):
    name = "userknn"
    releasable = False
    not_releasable_because = "userknn keeps every customer's history in the model; it is a centralised baseline"

    ratings: sp.csr_matrix | None = None  # (n_users, n_items + 1) binary training rows

    def fit(self, split: LeaveOneOut) -> FitResult:
        if self.config.similarity not in SIMILARITIES:
            raise ConfigError(f"similarity={self.config.similarity!r}: userknn takes {' or '.join(SIMILARITIES)}.")
        self.ratings = binary_rows(split.train, self.n_items)
        return FitResult(epochs_run=1, best_epoch=1)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        check_fitted(self, self.ratings is not None)
        blocks = [self._score_block(users[i : i + SCORE_BATCH], histories[i : i + SCORE_BATCH])
                  for i in range(0, len(histories), SCORE_BATCH)]
        return torch.from_numpy(np.concatenate(blocks) if blocks else np.zeros((0, self.n_items + 1), dtype=np.float32))

    def _score_block(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        queries = binary_rows(histories, self.n_items)
        similarity = similarities(queries, self.ratings, self.config.similarity, self.n_items)
        own = np.asarray(users, dtype=np.int64)
        inside = (own >= 0) & (own < similarity.shape[1])
        similarity[np.flatnonzero(inside), own[inside]] = -np.inf  # not one's own neighbour
        weights = top_k_weights(similarity, self.config.neighbors)
        return np.asarray((weights @ self.ratings).todense(), dtype=np.float32)

    def state(self) -> dict[str, torch.Tensor]:
        check_fitted(self, self.ratings is not None)
        r = self.ratings
        return {"indptr": torch.from_numpy(r.indptr.astype(np.int64)), "indices": torch.from_numpy(r.indices.astype(np.int64))}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        indices = state["indices"].numpy()
        self.ratings = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, state["indptr"].numpy()),
                                     shape=(len(state["indptr"]) - 1, self.n_items + 1))


def binary_rows(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """(len(histories), n_items + 1): 1 where the user has the item (repeats once)."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories) if len(histories) else np.empty(0, dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), n_items + 1))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def similarities(queries: sp.csr_matrix, users: sp.csr_matrix, kind: str, n_items: int) -> np.ndarray:
    """(queries, users) dense cosine or Pearson similarity of binary rows over the n_items items."""
    overlap = np.asarray((queries @ users.T).todense(), dtype=np.float64)
    q_count = np.asarray(queries.sum(axis=1), dtype=np.float64).ravel()
    u_count = np.asarray(users.sum(axis=1), dtype=np.float64).ravel()
    if kind == "cosine":
        norm = np.sqrt(np.outer(q_count, u_count))
        return np.divide(overlap, norm, out=np.zeros_like(overlap), where=norm > 0).astype(np.float32)
    n = float(n_items)
    q_spread = np.sqrt(q_count * (n - q_count))  # n * std of a binary row with that many ones
    u_spread = np.sqrt(u_count * (n - u_count))
    covariance = n * overlap - np.outer(q_count, u_count)  # n^2 * cov
    norm = np.outer(q_spread, u_spread)
    return np.divide(covariance, norm, out=np.zeros_like(covariance), where=norm > 0).astype(np.float32)


def top_k_weights(similarity: np.ndarray, k: int) -> sp.csr_matrix:
    """The k largest positive similarities of each row as a sparse weight matrix."""
    k = min(k, similarity.shape[1])
    if k == 0:
        return sp.csr_matrix(similarity.shape, dtype=np.float32)
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(similarity, top, axis=1)
    keep = values > 0
    rows = np.repeat(np.arange(similarity.shape[0]), k).reshape(-1, k)
    return sp.csr_matrix((values[keep], (rows[keep], top[keep])), shape=similarity.shape, dtype=np.float32)
