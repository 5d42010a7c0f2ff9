"""Matrix factorisation with a softmax over all items (implicit feedback).

score(u, i) = <user_u, item_i> + bias_i. Item embeddings and biases are the shareable,
item-side part (federation sends only those); user embeddings are private to whoever holds
the user's history and can be re-derived from it by :meth:`MatrixFactorization.fold_in`.

Full softmax rather than BPR: with 12k items the (batch x items) logits are cheap on CPU,
and the full-softmax loss is what the ranking metric rewards (every item competes).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrec.data.split import LeaveOneOut
from fedrec.models.registry import register_model
from fedrec.models.torch_model import TorchRecommender

ITEM_SIDE = ("item_embedding.weight", "item_bias.weight")  # the shareable parameters


class MFNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.item_bias = nn.Embedding(n_items + 1, 1, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def logits(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> (B, n_items + 1)."""
        return self.dropout(user_vectors) @ self.item_embedding.weight.T + self.item_bias.weight.T

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.logits(self.user_embedding(users))


@register_model
class MatrixFactorization(TorchRecommender):
    name = "mf"
    defaults = {"epochs": 60, "batch_size": 1024, "lr": 3e-3, "weight_decay": 0.0, "dim": 64, "dropout": 0.3}
    shareable_parameters = ITEM_SIDE

    def build_net(self) -> MFNet:
        return MFNet(self.n_users, self.n_items, self.config.dim, self.config.dropout)

    def batches(self, split: LeaveOneOut, rng: np.random.Generator) -> tuple[Iterable, int]:
        users = np.repeat(np.arange(len(split.train)), [len(s) for s in split.train])
        items = np.concatenate(split.train)
        order = rng.permutation(len(users))
        size = self.config.batch_size
        n_batches = (len(order) + size - 1) // size
        pairs = (
            (torch.from_numpy(users[order[i : i + size]]), torch.from_numpy(items[order[i : i + size]]))
            for i in range(0, len(order), size)
        )
        return pairs, n_batches

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        users, items = batch
        return F.cross_entropy(self.net(users), items)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return self.net(torch.as_tensor(users, dtype=torch.int64))

    def fold_in(self, histories: Sequence[np.ndarray], *, steps: int = 100, lr: float = 0.05) -> torch.Tensor:
        """(B, dim) user vectors fitted to each history with the item side frozen.

        This is how a user vector is rebuilt where it was never stored (a new device, or
        server-side evaluation of a federated model): same loss as training, items fixed.
        """
        self.net.eval()
        # Callers may be inside no_grad/inference_mode (evaluation); this needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            rows = torch.from_numpy(np.repeat(np.arange(len(histories)), [len(h) for h in histories]))
            items = torch.from_numpy(np.concatenate(histories).astype(np.int64))
            item_vectors = self.net.item_embedding.weight.detach().clone()
            item_bias = self.net.item_bias.weight.detach().clone().T
            vectors = torch.zeros(len(histories), self.config.dim, requires_grad=True)
            optimizer = torch.optim.Adam([vectors], lr=lr)
            counts = torch.bincount(rows, minlength=len(histories)).float()  # (B,)
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                logits = vectors @ item_vectors.T + item_bias  # (B, n_items + 1)
                # Cross-entropy over each user's history items without materialising one
                # logits row per history item: sum_i [logsumexp(logits_u) - logits_u,i].
                normaliser = (counts * torch.logsumexp(logits, dim=1)).sum()
                loss = (normaliser - logits[rows, items].sum()) / len(items) + 1e-4 * vectors.pow(2).sum(dim=1).mean()
                loss.backward()
                optimizer.step()
        return vectors.detach()

    def score_folded_in(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        with torch.no_grad():
            return self.net.logits(self.fold_in(histories))


class FoldInScorer:
    """Scores an MF model's item side for users it holds no vector for (server-side
    evaluation of a federated model, a new device): user vectors come from fold-in."""

    def __init__(self, model: MatrixFactorization, *, steps: int = 100) -> None:
        self.model, self.steps = model, steps

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        with torch.no_grad():
            return self.model.net.logits(self.model.fold_in(histories, steps=self.steps))
