"""The LSTM's network: item ids -> embedding -> LSTM -> class scores -> item scores.

The recurrent layer is ``nn.LSTM`` (fused, fast) when training is not private and Opacus'
``DPLSTM`` layer when it is (Opacus refuses ``nn.LSTM``); DPLSTM keeps nn.LSTM's parameter
names, so ``portable_state`` moves weights between the two unchanged. The DP vocabulary
(``item_vocabulary``) and the attribute scores (``item_attributes``) plug in here.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from opacus.layers import DPLSTM
from torch import nn

from fedrec.models.item_attributes import MAX_ATTRIBUTES, attribute_table, bucket_matrix
from fedrec.models.item_vocabulary import first_items_vocabulary, ranked_vocabulary, spread_over_items


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
        if private:
            # A random output bias is a random popularity ranking that noisy DP steps take
            # many rounds to undo; start every item level instead.
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
            cached = self.__dict__["_bucket_matrix"] = (version, bucket_matrix(self.item_attributes, self.attribute_buckets))
        return cached[1]

    def set_attributes(self, attribute_lists: Sequence[Sequence[int]]) -> None:
        """``attribute_lists[i]``: item i's catalog attribute ids (item 0 is padding)."""
        self.item_attributes.copy_(attribute_table(attribute_lists, self.n_items, self.attribute_buckets))

    def set_vocabulary(self, items_by_popularity: torch.Tensor) -> None:
        """Classes 2.. for the ``vocab_size`` first items of the ranking, OTHER for the rest."""
        self.item_class.copy_(ranked_vocabulary(items_by_popularity, self.n_items, self.vocab_size))

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
