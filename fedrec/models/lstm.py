"""Next-item prediction: item embedding -> LSTM -> scores over all items.

The recurrent layer is ``nn.LSTM`` (fused, fast) when training is not private and Opacus'
``DPLSTM`` when it is: Opacus refuses ``nn.LSTM``, and DPLSTM keeps nn.LSTM's parameter
names, so weights move between the two unchanged.

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
from opacus.layers import DPLSTM
from torch import nn

from fedrec.data.interactions import Interactions
from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.models.registry import register_model
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.dp_sgd import gather_positions, last_targets
from fedrec.privacy.popularity_prior import bias_from_counts


OTHER = 1  # with a vocabulary: the one class every item outside it shares
MAX_ATTRIBUTES = 8  # attribute buckets read per item (Beauty items have 1-6 attributes)


class SequenceNet(nn.Module):
    """Item ids -> embedding -> LSTM -> a score per class.

    Classes are the items themselves, or (``vocab_size``, for DP) padding, one shared
    "other item" class and the ``vocab_size`` items the popularity prior ranked highest:
    under DP every parameter gets noise, so a model of the items it can actually learn
    about has several times less noise to fight. ``item_class`` maps item ids to classes.
    """

    def __init__(self, n_items: int, dim: int, dropout: float, *, private: bool = False, vocab_size: int = 0,
                 attribute_buckets: int = 0) -> None:
        super().__init__()
        self.n_items = n_items
        self.vocab_size = vocab_size if 0 < vocab_size < n_items else 0
        classes = self.vocab_size + 2 if self.vocab_size else n_items + 1
        self.item_embedding = nn.Embedding(classes, dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        recurrent = DPLSTM if private else nn.LSTM
        self.rnn = recurrent(dim, dim, batch_first=True)
        self.output = nn.Linear(dim, classes)
        if self.vocab_size:  # until a prior ranks them: the first items, in id order
            item_class = torch.full((n_items + 1,), OTHER, dtype=torch.int64)
            item_class[0] = 0
            item_class[1 : self.vocab_size + 1] = torch.arange(2, self.vocab_size + 2)
            self.register_buffer("item_class", item_class)
        self.attribute_buckets = attribute_buckets
        if attribute_buckets:
            # Row i: item i's attribute buckets + 1, 0-padded (all 0 until set_attributes).
            self.register_buffer("item_attributes", torch.zeros((n_items + 1, MAX_ATTRIBUTES), dtype=torch.int64))
            self.attribute_embedding = nn.Embedding(attribute_buckets + 1, dim, padding_idx=0)
            self.attribute_output = nn.Linear(dim, attribute_buckets + 1, bias=False)
            nn.init.zeros_(self.attribute_output.weight)  # learnt from zero
            # Shoppers come back to the brand and category they just bought: each item gets
            # a learnt bonus per attribute it shares with the item just read, starting at one
            # logit per shared attribute (a prior belief, refined in training).
            self.attribute_affinity = nn.Embedding(attribute_buckets + 1, 1, padding_idx=0)
            nn.init.ones_(self.attribute_affinity.weight)
            with torch.no_grad():
                self.attribute_affinity.weight[0] = 0
        if private:
            # A random output bias is a random popularity ranking that noisy DP steps take
            # many rounds to undo; start every item level instead.
            nn.init.zeros_(self.output.bias)

    def classes_of(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_class[items] if self.vocab_size else items

    def item_scores(self, class_logits: torch.Tensor) -> torch.Tensor:
        """(..., classes) -> (..., n_items + 1). Items outside the vocabulary share the
        "other" class's probability equally."""
        if not self.vocab_size:
            return class_logits
        scores = class_logits[..., self.item_class]
        others = (self.item_class == OTHER).sum().clamp(min=1)
        return torch.where(self.item_class == OTHER, scores - torch.log(others.float()), scores)

    def item_logits(self, states: torch.Tensor, last_items: torch.Tensor) -> torch.Tensor:
        """(..., dim) states after reading ``last_items`` (...) -> (..., n_items + 1): the
        class scores spread over items, plus, with attributes, each item's summed bucket
        scores (a sparse item x bucket product): the state's, and the affinity bonus for
        buckets the last item has."""
        scores = self.item_scores(self.output(states))
        if not self.attribute_buckets:
            return scores
        # Layers see (batch, ...) shapes, never users flattened together: Opacus needs them per user.
        last_buckets = self.item_attributes[last_items]  # (..., MAX_ATTRIBUTES), 0 = none
        bonus = self.attribute_affinity(last_buckets).squeeze(-1)  # padding row is 0
        by_bucket = self.attribute_output(states).scatter_add(-1, last_buckets, bonus)  # (..., buckets + 1)
        by_bucket = by_bucket.reshape(-1, self.attribute_buckets + 1)
        by_item = torch.sparse.mm(self.item_bucket_matrix(), by_bucket.T).T  # (N, n_items + 1)
        return scores + by_item.reshape(scores.shape)

    def item_bucket_matrix(self) -> torch.Tensor:
        """Sparse (n_items + 1, buckets + 1) 0/1 matrix of the attribute table, rebuilt only
        when the table changes."""
        version = (self.item_attributes.data_ptr(), self.item_attributes._version)
        cached = self.__dict__.get("_bucket_matrix")
        if cached is None or cached[0] != version:
            items, slots = torch.nonzero(self.item_attributes, as_tuple=True)  # row-major: (item, bucket) sorted
            indices = torch.stack([items, self.item_attributes[items, slots]])
            shape = (self.n_items + 1, self.attribute_buckets + 1)
            matrix = torch.sparse_coo_tensor(indices, torch.ones(len(items)), shape, check_invariants=False).coalesce()
            cached = self.__dict__["_bucket_matrix"] = (version, matrix)
        return cached[1]

    def set_attributes(self, attribute_lists: Sequence[Sequence[int]]) -> None:
        """``attribute_lists[i]``: item i's catalog attribute ids (item 0 is padding)."""
        table = torch.zeros_like(self.item_attributes)
        for item, attributes in enumerate(attribute_lists[: self.n_items + 1]):
            buckets = sorted({int(a) % self.attribute_buckets + 1 for a in attributes})[:MAX_ATTRIBUTES]
            table[item, : len(buckets)] = torch.tensor(buckets, dtype=torch.int64)
        table[0] = 0
        self.item_attributes.copy_(table)

    def set_vocabulary(self, items_by_popularity: torch.Tensor) -> None:
        """Classes 2.. for the ``vocab_size`` first items of the ranking, OTHER for the rest."""
        item_class = torch.full_like(self.item_class, OTHER)
        item_class[0] = 0
        item_class[items_by_popularity[: self.vocab_size]] = torch.arange(2, self.vocab_size + 2)
        self.item_class.copy_(item_class)

    def portable_state(self) -> dict[str, torch.Tensor]:
        """Weights under nn.LSTM's names whichever layer is in use (nested DPLSTM also
        reports its inner ``l0.ih.*`` aliases; those are dropped)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("rnn.l")}

    def load_portable_state(self, state: dict[str, torch.Tensor]) -> None:
        rnn = {k.removeprefix("rnn."): v for k, v in state.items() if k.startswith("rnn.")}
        self.rnn.load_state_dict(rnn)
        rest = {k: v for k, v in state.items() if not k.startswith("rnn.")}
        missing, unexpected = super().load_state_dict(rest, strict=False)
        missing = [k for k in missing if not k.startswith("rnn.")]
        if missing or unexpected:
            raise KeyError(f"state does not fit SequenceNet: missing {missing}, unexpected {unexpected}")

    def hidden(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) right-padded item ids -> (B, L, dim); position t has read items 0..t."""
        inputs = self.item_embedding(self.classes_of(sequences))
        if self.attribute_buckets:  # one embedding call for all attribute slots (ghost clipping needs one)
            inputs = inputs + self.attribute_embedding(self.item_attributes[sequences]).sum(dim=-2)
        states, _ = self.rnn(self.dropout(inputs))
        return self.dropout(states)

    def forward(self, sequences: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy at positions with a target only: over classes, or over items when
        attributes tell items of one class apart."""
        states = self.hidden(sequences)
        present = targets > 0
        if self.attribute_buckets:
            return F.cross_entropy(self.item_logits(states[present], sequences[present]), targets[present])
        return F.cross_entropy(self.output(states[present]), self.classes_of(targets[present]))


def right_pad(sequences: Sequence[np.ndarray], length: int | None = None) -> torch.Tensor:
    length = length or max((len(s) for s in sequences), default=1)
    padded = np.zeros((len(sequences), max(1, length)), dtype=np.int64)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = seq
    return torch.from_numpy(padded)


@register_model
class LSTMRecommender(TorchRecommender):
    name = "lstm"
    # Measured on Beauty (docs/results.md): centralised Adam 3e-3 keeps the best validation
    # epoch; federated clients take Adam 5e-3 steps scaled by the federation's second moment
    # (the Mime recipe, fedrec.federation.recipes); SGD at 20 is the best plain-SGD rate.
    defaults = {"epochs": 200, "batch_size": 128, "optimizer": "adam", "lr": {"adam": 3e-3, "sgd": 20.0},
                "weight_decay": 0.0, "dim": 64, "dropout": 0.3, "max_len": 50, "vocab_size": 0, "prior_noise": 5.0}
    federated_defaults = {"batch_size": 64, "lr": {"adam": 5e-3}}
    # DPLSTM steps in Python over every position of the longest sequence in a Poisson batch:
    # short histories, a small net, few large batches, a vocabulary from the noisy prior.
    dp_defaults = {"epochs": 10, "batch_size": 1024, "lr": {"adam": 2e-2, "sgd": 10.0}, "dim": 32, "dropout": 0.0,
                   "max_len": 20, "vocab_size": 3000}
    federated_dp_defaults = {"batch_size": 128, "vocab_size": 500, "prior_noise": 3.0}
    dp_attribute_buckets = 1024
    shareable_parameters = None  # every parameter is shared in federation
    item_row_parameters = ("item_embedding.weight",)
    privacy_unit = "user (their whole train item sequence)"
    private_targets = 10  # under DP, each user's loss covers their 10 most recent next-item predictions
    uses_popularity_prior = True

    def apply_popularity_prior(self, counts: np.ndarray) -> None:
        """Output bias from the noisy counts; with a vocabulary, also which items it holds
        (the most popular by the same counts; the "other" class gets their summed mass)."""
        with torch.no_grad():
            if not self.net.vocab_size:
                self.net.output.bias.copy_(bias_from_counts(counts))
                return
            ranking = torch.from_numpy(np.argsort(-np.asarray(counts)[1:], kind="stable") + 1)
            self.net.set_vocabulary(ranking)
            clipped = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
            vocab = ranking[: self.net.vocab_size].numpy()
            class_counts = np.zeros(self.net.vocab_size + 2)
            class_counts[2:] = clipped[vocab]
            rest = np.ones(len(clipped), dtype=bool)
            rest[0] = False
            rest[vocab] = False
            # +1 per item as in bias_from_counts, so "other" carries its items' smoothing mass too
            class_counts[OTHER] = clipped[rest].sum() + rest.sum() - 1
            self.net.output.bias.copy_(bias_from_counts(class_counts))

    def __init__(self, config, *, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        if self.config.vocab_size and not (self.config.dp and self.config.prior_noise):
            raise ConfigError(
                f"vocab_size={self.config.vocab_size} picks items by the DP popularity prior; use it with --dp "
                "(and a --prior-noise above 0), or set --vocab-size 0 to model every item."
            )

    def build_net(self) -> SequenceNet:
        # Opacus refuses nn.LSTM; DPLSTM is the drop-in with the same parameter names.
        return SequenceNet(self.n_items, self.config.dim, self.config.dropout, private=self.config.dp, vocab_size=self.config.vocab_size,
                           attribute_buckets=self.config.attribute_buckets)

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
        """Mean cross-entropy of each user's recent predictions. The output layer runs on
        (B, K, dim) so Opacus sees one sample per user (never positions flattened together)."""
        inputs, positions, targets = batch
        states = gather_positions(self.net.hidden(inputs), positions)  # (B, K, dim)
        if self.net.attribute_buckets:
            logits, labels = self.net.item_logits(states, inputs.gather(1, positions)), targets  # (B, K, items + 1)
        else:
            logits, labels = self.net.output(states), self.net.classes_of(targets)  # (B, K, classes)
        # Flattened, so the softmax runs over the contiguous last dimension (on logits
        # transposed to (B, classes, K) it was several times slower).
        losses = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=0, reduction="none"
        ).view(targets.shape)  # (B, K)
        present = (targets > 0).float()
        return (losses * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)

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

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        self.net.eval()
        recent = [h[-self.config.max_len :] for h in histories]
        lengths = torch.tensor([max(1, len(h)) for h in recent])
        with torch.no_grad():
            states = self.net.hidden(right_pad(recent))  # (B, L, dim)
            last = states[torch.arange(len(recent)), lengths - 1]  # (B, dim)
            return self.net.item_logits(last, torch.tensor([h[-1] if len(h) else 0 for h in recent]))
