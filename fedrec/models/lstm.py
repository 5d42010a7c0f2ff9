"""Next-item prediction with an LSTM (``sequence_net.SequenceNet``): the recommender, its
measured recipes, its batches, its per-user DP samples and its scoring.

Training predicts the next item at every position of a user's train sequence; the output
layer is computed only at positions that have a target (padding carries most of a batch of
short Beauty sequences, and the item softmax is most of the cost). Batches group sequences
of similar length so padding stays small.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fedrec.data.interactions import Interactions
from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.models.base import ItemVectors, unit_rows
from fedrec.models.item_vocabulary import OTHER, bias_from_counts, vocabulary_from_counts
from fedrec.models.registry import register_model
from fedrec.models.sequence_net import SequenceNet
from fedrec.models.sequences import gather_positions, last_targets, right_pad
from fedrec.models.torch_model import TorchRecommender


@register_model
class LSTMRecommender(TorchRecommender):
    name = "lstm"
    # Measured on Beauty (docs/results.md): centralised Adam 3e-3 keeps the best validation
    # epoch; federated clients take Adam 5e-3 steps scaled by the federation's second moment
    # (the Mime recipe, fedrec.federation.recipes); SGD at 20 is the best plain-SGD rate.
    defaults = {"epochs": 200, "batch_size": 128, "optimizer": "adam", "lr": {"adam": 3e-3, "sgd": 20.0},
                "weight_decay": 0.0, "dim": 64, "dropout": 0.3, "max_len": 50, "vocab_size": 0}
    federated_defaults = {"batch_size": 64, "lr": {"adam": 5e-3}}
    # DPLSTM steps in Python over every position of the longest sequence in a Poisson batch:
    # short histories, a small net, few large batches, a vocabulary from the noisy prior.
    dp_defaults = {"epochs": 10, "batch_size": 1024, "lr": {"adam": 2e-2, "sgd": 10.0}, "dim": 32, "dropout": 0.0,
                   "max_len": 20, "vocab_size": 3000, "prior_noise": 5.0}
    federated_dp_defaults = {"batch_size": 128, "vocab_size": 500, "prior_noise": 3.0}
    catalog_attribute_buckets = 1024
    shareable_parameters = None  # every parameter is shared in federation
    item_row_parameters = ("item_embedding.weight",)
    privacy_unit = "user (their whole train item sequence)"
    private_targets = 10  # under DP, each user's loss covers their 10 most recent next-item predictions
    uses_popularity_prior = True
    predicts_next_item = True

    def apply_popularity_prior(self, counts: np.ndarray) -> None:
        """Output bias from the noisy counts; with a vocabulary, also which items it holds
        (the most popular by the same counts; the "other" class gets their summed mass)."""
        with torch.no_grad():
            if not self.net.vocab_size:
                self.net.output.bias.copy_(bias_from_counts(counts))
                return
            ranking, class_counts = vocabulary_from_counts(counts, self.net.vocab_size)
            self.net.set_vocabulary(ranking)
            self.net.output.bias.copy_(bias_from_counts(class_counts))

    def __init__(self, config, *, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        if self.config.vocab_size and not self.config.prior_noise:  # only DP recipes set a prior
            raise ConfigError(
                f"vocab_size={self.config.vocab_size} picks items by the DP popularity prior; use it with --dp "
                "(and a --prior-noise above 0), or set --vocab-size 0 to model every item."
            )

    def build_net(self) -> SequenceNet:
        return SequenceNet(self.n_items, self.config.dim, self.config.dropout, vocab_size=self.config.vocab_size,
                           attribute_buckets=self.config.attribute_buckets, level_output=self.starts_level)

    @property
    def starts_level(self) -> bool:
        """Whether the output bias starts at zero: a model set up to start from a noisy
        popularity prior (a DP recipe sets --prior-noise; 0 = no release, and level is the prior)."""
        return self.config.prior_noise is not None

    def use_item_attributes(self, data: Interactions) -> None:
        """Read the catalog's item attributes into the model (they then travel with its
        state, so clients need no catalog of their own)."""
        if not self.config.attribute_buckets:
            return
        if not data.has_item_attributes:
            raise ConfigError(
                f"--attribute-buckets {self.config.attribute_buckets} needs item attributes, and {data.source} has none; "
                "give a data set with an item attribute file (as Beauty has), or drop --attribute-buckets."
            )
        lists = [[] for _ in range(self.n_items + 1)]
        for item, attributes in data.item_attributes["attributes"].items():
            if 0 < int(item) <= self.n_items:
                lists[int(item)] = list(attributes)
        self.net.set_attributes(lists)

    def _windows(self, split: LeaveOneOut) -> list[np.ndarray]:
        """Each user's most recent max_len + 1 train items: inputs [:-1] predict targets [1:]."""
        return [s[-(self.config.max_len + 1) :] for s in split.train if len(s) >= 2]

    def private_samples(self, split: LeaveOneOut) -> list[np.ndarray]:
        return self._windows(split)

    def private_batch(self, samples: Sequence[np.ndarray], rows: list[int]) -> tuple[torch.Tensor, ...]:
        positions, targets = last_targets(samples, rows, self.private_targets)
        return right_pad([samples[r][:-1] for r in rows]), positions, targets

    def private_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean cross-entropy of each user's recent predictions. Only positions with a target
        are scored, as one (positions, outputs) table; the item-score head gives the DP
        engine each user's share of its gradients (``ItemScoreHead``)."""
        inputs, positions, targets = batch
        states = gather_positions(self.net.hidden(inputs), positions)  # (B, K, dim)
        present = targets > 0
        users = present.nonzero()[:, 0]  # ascending
        head = self.net.item_head
        logits = head(states[present], inputs.gather(1, positions)[present], users, len(targets))
        losses = F.cross_entropy(logits, head.labels(targets[present]), reduction="none")
        return torch.zeros(len(targets), dtype=losses.dtype).index_add(0, users, losses) / present.sum(dim=1).clamp(min=1)

    def batches(self, split: LeaveOneOut, rng: np.random.Generator) -> tuple[Iterable, int]:
        windows = self._windows(split)
        lengths = np.array([len(w) for w in windows])
        order = np.lexsort((rng.random(len(windows)), lengths))  # by length, random within
        size = self.config.batch_size
        groups = [order[i : i + size] for i in range(0, len(order), size)]
        rng.shuffle(groups)

        def make(group: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            chosen = [windows[i] for i in group]
            return right_pad([w[:-1] for w in chosen]), right_pad([w[1:] for w in chosen])

        return (make(g) for g in groups), len(groups)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.portable_state().items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_portable_state(state)
        self.net.eval()

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        return self.net(inputs, targets)

    def row_losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        return self.net.row_losses(inputs, targets)

    def item_rows_read(self, batch: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        return self.net.rows_read(batch[0])

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        self.net.eval()
        recent = [h[-self.config.max_len :] for h in histories]
        lengths = torch.tensor([max(1, len(h)) for h in recent])
        with torch.no_grad():
            states = self.net.hidden(right_pad(recent))  # (B, L, dim)
            last = states[torch.arange(len(recent)), lengths - 1]  # (B, dim)
            return self.net.scoring_item_logits(last, torch.tensor([h[-1] if len(h) else 0 for h in recent]))

    def history_length(self) -> int:
        return self.config.max_len

    def item_vectors(self) -> ItemVectors:
        """Each item's next-item output row (items outside the DP vocabulary share the
        "other" class's row: they have no vector of their own)."""
        net = self.net
        classes = net.classes_of(torch.arange(self.n_items + 1))  # item -> its output row
        vectors = unit_rows(net.output.weight)[classes]
        own = (classes.numpy() > OTHER) if net.vocab_size else np.arange(self.n_items + 1) > 0
        vectors[torch.from_numpy(~own)] = 0.0
        return ItemVectors(vectors, own, "cosine in the model's next-item output embeddings")
