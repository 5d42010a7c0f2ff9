"""Next-item prediction with a pooled MLP (``pooled_encoder``): the LSTM recommender's data,
batches, DP samples, vocabulary, attribute scores and scoring, with the recurrent layer
replaced by the mean of the items read so far and the last item through a ReLU layer.

Under DP a step costs about 0.74 of the LSTM's (per-user gradients of two linear layers
instead of DPLSTM's Python loop over positions; the shared item softmax dominates both).
Measured on Beauty: docs/results.md, "Centralised results" and "What DP costs per step".
"""

from __future__ import annotations

from fedrec.models.lstm import LSTMRecommender
from fedrec.models.registry import register_model
from fedrec.models.sequence_net import SequenceNet


@register_model
class MLPRecommender(LSTMRecommender):
    name = "mlp"

    def build_net(self) -> SequenceNet:
        return SequenceNet(self.n_items, self.config.dim, self.config.dropout, vocab_size=self.config.vocab_size,
                           attribute_buckets=self.config.attribute_buckets, level_output=self.starts_level, encoder="mlp")
