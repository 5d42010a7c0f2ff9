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
from fedrec.models.base import ItemFactors, ItemVectors, Scorer, unit_rows
from fedrec.models.item_vocabulary import bias_from_counts
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


class ItemSide(nn.Module):
    """The item tables alone: what DP-SGD trains for MF (user vectors are inputs)."""

    def __init__(self, net: MFNet) -> None:
        super().__init__()
        self.item_embedding = net.item_embedding
        self.item_bias = net.item_bias


@register_model
class MatrixFactorization(TorchRecommender):
    name = "mf"
    # Measured on Beauty (docs/results.md): federated clients train with SGD 10 (decayed per
    # round by the recipe, fedrec.federation.recipes).
    defaults = {"epochs": 60, "batch_size": 1024, "optimizer": "adam", "lr": {"adam": 3e-3, "sgd": 10.0},
                "weight_decay": 0.0, "dim": 64, "dropout": 0.3}
    federated_defaults = {"batch_size": 64, "optimizer": "sgd"}
    dp_defaults = {"epochs": 10, "batch_size": 256, "optimizer": "adam", "dim": 32, "dropout": 0.0, "prior_noise": 5.0}
    shareable_parameters = ITEM_SIDE
    # Under DP the item biases start from a noisy, accounted popularity release: the release
    # audit's popularity baseline is that same release (nothing else is measured under DP).
    uses_popularity_prior = True
    privacy_unit = "user (their set of train items; their vector is refitted locally and never released)"
    private_positives = 50  # most recent distinct train items per user in a DP sample
    private_negatives = 100  # uniformly sampled items each positive competes with

    def apply_popularity_prior(self, counts: np.ndarray) -> None:
        """Item biases from the noisy counts (log-popularity, centred)."""
        with torch.no_grad():
            self.net.item_bias.weight.copy_(bias_from_counts(counts).unsqueeze(1))

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

    def item_vectors(self) -> ItemVectors:
        vectors = unit_rows(self.net.item_embedding.weight)
        vectors[0] = 0.0  # padding: trained through the softmax's column 0, but no item's vector
        return ItemVectors(vectors, np.arange(self.n_items + 1) > 0, "cosine in the model's item embeddings")

    def item_factors(self) -> ItemFactors:
        return ItemFactors(self.net.item_embedding.weight.detach(), self.net.item_bias.weight.detach().squeeze(1))

    def scorer_for(self, n_users: int) -> Scorer:
        """A model saved without these users' vectors (a federation's model.pt: n_users 0)
        scores them by fold-in, as the server evaluated it."""
        return self if self.n_users == n_users else FoldInScorer(self)

    # --- DP: alternating minimisation. Each user's vector is fitted from that user's own
    # items with the item side frozen (local, never released), then DP-SGD trains the
    # item side with one sample per user, so a user's influence on what is released is
    # clipped and noised like any other per-sample gradient.

    def prepare_private(self, split: LeaveOneOut, chunk: int = 1024) -> None:
        with torch.no_grad():
            for start in range(0, len(split.train), chunk):
                histories = [np.asarray(h) for h in split.train[start : start + chunk]]
                self.net.user_embedding.weight[start : start + len(histories)] = self.fold_in(histories, steps=50)

    def private_samples(self, split: LeaveOneOut) -> list[tuple[int, np.ndarray]]:
        samples = []
        for user, history in enumerate(split.train):
            recent = list(dict.fromkeys(history[::-1]))[: self.private_positives]  # distinct, newest first
            if recent:
                samples.append((user, np.asarray(recent, dtype=np.int64)))
        return samples

    def private_module(self) -> nn.Module:
        self.net.user_embedding.weight.requires_grad_(False)
        return ItemSide(self.net)

    def private_batch(self, samples: Sequence[tuple[int, np.ndarray]], rows: list[int]) -> tuple[torch.Tensor, ...]:
        chosen = [samples[r] for r in rows]
        width = max(len(items) for _, items in chosen)
        positives = np.zeros((len(chosen), width), dtype=np.int64)
        for i, (_, items) in enumerate(chosen):
            positives[i, : len(items)] = items
        negatives = torch.randint(1, self.n_items + 1, (len(chosen), self.private_negatives))
        users = torch.tensor([u for u, _ in chosen], dtype=torch.int64)
        return users, torch.cat([torch.from_numpy(positives), negatives], dim=1), width

    def private_loss(self, batch: tuple[torch.Tensor, torch.Tensor, int]) -> torch.Tensor:
        """Sampled softmax per positive against shared negatives, averaged per user.
        Positives and negatives go through each item table in ONE call: ghost clipping
        refuses a layer used twice in a forward pass."""
        users, items, width = batch
        user_vectors = self.net.user_embedding.weight[users].detach()  # (B, d), an input here
        logits = (self.net.item_embedding(items) @ user_vectors.unsqueeze(-1)).squeeze(-1)
        logits = logits + self.net.item_bias(items).squeeze(-1)  # (B, P + N)
        positive, negative = logits[:, :width], logits[:, width:]
        normaliser = torch.logsumexp(torch.cat([positive.unsqueeze(-1), negative.unsqueeze(1).expand(-1, width, -1)], dim=-1), dim=-1)
        present = (items[:, :width] > 0).float()
        return ((normaliser - positive) * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)

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
            optimizer = torch.optim.Adam([vectors], lr=lr, fused=True)
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
