"""The MLP recommender's encoder: at each position, the mean of the items read so far and
the last item, through a ReLU layer (YouTube's candidate network, Covington et al., RecSys
2016: averaged watch embeddings into a ReLU tower, softmax over all videos).

It returns states shaped like an LSTM's, so ``SequenceNet`` scores them with the same item
head. No recurrence: DP-SGD computes per-user gradients of two linear layers instead of
walking DPLSTM's time steps in Python.
"""

from __future__ import annotations

import torch
from torch import nn


class PooledEncoder(nn.Module):
    """(B, L, dim) right-padded item inputs -> ((B, L, dim) states, None); position t reads
    items 0..t (prefix means by a cumulative sum: padding comes after every real item)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(2 * dim, 2 * dim)
        self.project = nn.Linear(2 * dim, dim)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        read = torch.arange(1, inputs.shape[1] + 1, dtype=inputs.dtype, device=inputs.device).view(1, -1, 1)
        mean = inputs.cumsum(dim=1) / read
        return self.project(torch.relu(self.hidden(torch.cat([mean, inputs], dim=-1)))), None
