"""The sequence models' network: item ids -> embedding -> encoder -> class scores -> item scores.

The encoder is an LSTM (``lstm``) or the pooled MLP of ``pooled_encoder`` (``mlp``). The LSTM
is always built as ``nn.LSTM`` (fused, fast); private training swaps in a layer Opacus accepts
(``fedrec.privacy.opacus_layers``: Opacus' ``DPLSTM``, same weights, same parameter names), so
``portable_state`` reads the same names from either, and scoring runs a fused copy. The DP
vocabulary (``item_vocabulary``) and the attribute scores (``item_attributes``) plug in here.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedrec.models.item_attributes import MAX_ATTRIBUTES, BucketTables, attribute_table, bucket_tables
from fedrec.models.item_scores import ItemScoreHead
from fedrec.models.item_vocabulary import first_items_vocabulary, ranked_vocabulary, spread_over_items
from fedrec.models.pooled_encoder import PooledEncoder

ENCODERS = ("lstm", "mlp")


class SequenceNet(nn.Module):
    """Item ids -> embedding -> encoder -> a score per class.

    Classes are the items themselves, or (``vocab_size``, for DP) padding, one shared
    "other item" class and the ``vocab_size`` items the popularity prior ranked highest:
    under DP every parameter gets noise, so a model of the items it can actually learn
    about has several times less noise to fight. ``item_class`` maps item ids to classes.
    """

    def __init__(self, n_items: int, dim: int, dropout: float, *, vocab_size: int = 0, attribute_buckets: int = 0,
                 level_output: bool = False, encoder: str = "lstm") -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder {encoder!r} is not one of {ENCODERS}")
        self.n_items = n_items
        self.vocab_size = vocab_size if 0 < vocab_size < n_items else 0
        classes = self.vocab_size + 2 if self.vocab_size else n_items + 1
        self.item_embedding = nn.Embedding(classes, dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        if encoder == "lstm":
            self.rnn = nn.LSTM(dim, dim, batch_first=True)
        else:
            self.pooled = PooledEncoder(dim)
        self.output = nn.Linear(dim, classes)
        if self.vocab_size:
            self.register_buffer("item_class", first_items_vocabulary(n_items, self.vocab_size))
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
        self.item_head = ItemScoreHead(self)  # holds no weights: scores with the ones above
        if level_output:
            # A random output bias is a random popularity ranking that noisy DP steps take
            # many rounds to undo; start every item level instead (no random draw: the other
            # weights are the same either way).
            nn.init.zeros_(self.output.bias)

    def classes_of(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_class[items] if self.vocab_size else items

    def item_scores(self, class_logits: torch.Tensor) -> torch.Tensor:
        """(..., classes) -> (..., n_items + 1). Items outside the vocabulary share the
        "other" class's probability equally."""
        return spread_over_items(class_logits, self.item_class) if self.vocab_size else class_logits

    def item_logits(self, states: torch.Tensor, last_items: torch.Tensor) -> torch.Tensor:
        """(..., dim) states after reading ``last_items`` (...) -> (..., n_items + 1): the
        class scores spread over items, plus, with attributes, each item's summed bucket
        scores: the state's, and the affinity bonus for buckets the last item has
        (``item_scores.ItemScoreHead``)."""
        if not self.attribute_buckets:
            return self.item_scores(self.output(states))
        flat = self.item_head(states.reshape(-1, states.shape[-1]), last_items.reshape(-1))
        return flat.reshape(*states.shape[:-1], -1)

    def scoring_item_logits(self, states: torch.Tensor, last_items: torch.Tensor) -> torch.Tensor:
        """``item_logits`` for scoring without gradients, from a dense (dim, n_items + 1)
        table built once per weight version (the training path folds its table at every
        step, for the gradients); only the affinity bonus of the last item's buckets is added
        per request."""
        weights, offsets = self._cached("_scoring_head_cache", self._scoring_head, [*self.parameters(), *self.buffers()])
        flat = states.reshape(-1, states.shape[-1])
        if self.attribute_buckets:
            scores = torch.addmm(self.item_head.bonus(last_items.reshape(-1)), flat, weights).add_(offsets)
        else:
            scores = torch.addmm(offsets, flat, weights)
        return scores.reshape(*states.shape[:-1], -1)

    def _scoring_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        nothing = torch.zeros(1, dtype=torch.int64)  # padding: no buckets, so no bonus
        offsets = self.item_logits(torch.zeros(1, self.output.in_features), nothing)[0]
        basis = torch.eye(self.output.in_features)
        weights = self.item_logits(basis, nothing.expand(len(basis))) - offsets
        return weights.contiguous(), offsets

    def encoder(self, scoring: bool) -> nn.Module:
        """The encoder; for scoring, a private layer swapped in for training (Opacus' DPLSTM,
        which runs step by step in Python) is replaced by a fused nn.LSTM holding the same
        weights (about 5x faster)."""
        if not hasattr(self, "rnn"):
            return self.pooled
        if not scoring or isinstance(self.rnn, nn.LSTM):
            return self.rnn
        return self._cached("_fused_rnn_cache", self._fused_rnn, list(self.rnn.parameters()))

    def _fused_rnn(self) -> nn.LSTM:
        fused = nn.LSTM(self.rnn.input_size, self.rnn.hidden_size, batch_first=True)
        fused.load_state_dict({k: v for k, v in self.rnn.state_dict().items() if not k.startswith("l")})
        return fused.eval()

    def _cached(self, name: str, build, inputs: list[torch.Tensor]):
        """``build()``, kept until one of the tensors it is built from changes (an optimiser
        step or a loaded state bumps its version)."""
        version = tuple((t.data_ptr(), t._version) for t in inputs)
        cached = self.__dict__.get(name)
        if cached is None or cached[0] != version:
            with torch.no_grad():
                cached = self.__dict__[name] = (version, build())
        return cached[1]

    def item_bucket_matrix(self) -> torch.Tensor:
        """Sparse (n_items + 1, buckets + 1) 0/1 matrix of the attribute table."""
        return self.bucket_tables().matrix

    def bucket_tables(self) -> BucketTables:
        """The attribute table's item x bucket matrix in the forms the item scores use,
        built once per process for each table's contents (and looked up once per table
        version of this net)."""
        return self._cached("_bucket_tables", lambda: bucket_tables(self.item_attributes, self.attribute_buckets),
                            [self.item_attributes])

    def set_attributes(self, attribute_lists: Sequence[Sequence[int]]) -> None:
        """``attribute_lists[i]``: item i's catalog attribute ids (item 0 is padding)."""
        self.item_attributes.copy_(attribute_table(attribute_lists, self.n_items, self.attribute_buckets))

    def set_vocabulary(self, items_by_popularity: torch.Tensor) -> None:
        """Classes 2.. for the ``vocab_size`` first items of the ranking, OTHER for the rest."""
        self.item_class.copy_(ranked_vocabulary(items_by_popularity, self.n_items, self.vocab_size))

    def portable_state(self) -> dict[str, torch.Tensor]:
        """Weights under nn.LSTM's names whichever layer is in use (a swapped-in DPLSTM also
        reports its inner ``l0.ih.*`` aliases; those are dropped)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("rnn.l")}

    def load_portable_state(self, state: dict[str, torch.Tensor]) -> None:
        rnn = {k.removeprefix("rnn."): v for k, v in state.items() if k.startswith("rnn.")}
        if hasattr(self, "rnn"):
            self.rnn.load_state_dict(rnn)
        elif rnn:
            raise KeyError("state holds LSTM weights (rnn.*) but this network's encoder is the pooled MLP")
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
        states, _ = self.encoder(scoring=not self.training and not torch.is_grad_enabled())(self.dropout(inputs))
        return self.dropout(states)

    def forward(self, sequences: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy at positions with a target only: over classes, or over items when
        attributes tell items of one class apart."""
        return self.position_losses(sequences, targets).mean()

    def row_losses(self, sequences: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B,) each row's mean cross-entropy over its positions with a target: what
        ``forward`` gives for that row alone (a batch of one-user devices, each its own loss)."""
        present = targets > 0
        sums = torch.zeros(len(targets), dtype=torch.float32).index_add(
            0, present.nonzero()[:, 0], self.position_losses(sequences, targets))
        return sums / present.sum(dim=1).clamp(min=1)

    def position_losses(self, sequences: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy at each position with a target (row-major order); the output layer
        runs only there."""
        states = self.hidden(sequences)
        present = targets > 0
        if self.attribute_buckets:
            logits, labels = self.item_logits(states[present], sequences[present]), targets[present]
        else:
            logits, labels = self.output(states[present]), self.classes_of(targets[present])
        return F.cross_entropy(logits, labels, reduction="none")

    def rows_read(self, sequences: torch.Tensor) -> list[torch.Tensor]:
        """Per row of the batch, the item-embedding rows it reads (its items' classes, no
        padding): the only rows of that table its gradient can touch."""
        classes = self.classes_of(sequences)
        return [row[row > 0].unique() for row in classes]
