"""Next-item prediction with a pooled MLP (``pooled_encoder``): the LSTM recommender's data,
batches, DP samples, vocabulary, attribute scores and scoring, with the recurrent layer
replaced by the mean of the items read so far and the last item through a ReLU layer.

Under DP this is the cheaper model to make private: Opacus computes per-user gradients of
two linear layers instead of stepping DPLSTM through every position in Python.
"""

from __future__ import annotations

from fedrec.models.lstm import LSTMRecommender
from fedrec.models.registry import register_model
from fedrec.models.sequence_net import SequenceNet


@register_model
class MLPRecommender(LSTMRecommender):
    name = "mlp"

    def build_net(self) -> SequenceNet:
        return SequenceNet(self.n_items, self.config.dim, self.config.dropout, private=self.config.dp,
                           vocab_size=self.config.vocab_size, attribute_buckets=self.config.attribute_buckets,
                           encoder="mlp")
