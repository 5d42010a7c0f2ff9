"""Layers Opacus accepts, swapped in where a model's own layers are ones it refuses.

Models say what they are (``nn.LSTM``: fused, fast); private training makes them private.
Opacus computes per-sample gradients only for layers it knows, and ``nn.LSTM`` is not one:
its ``DPLSTM`` is the drop-in, the same recurrence unrolled in Python over ``RNNLinear``
cells. ``make_private_layers(module)`` replaces every ``nn.LSTM`` under ``module`` in place by
a DPLSTM holding the same weights; DPLSTM keeps nn.LSTM's parameter names, so state dicts,
federated parameter names and saved models stay the same. It is idempotent: a module already
made private is returned unchanged. Scoring needs no swap back: ``SequenceNet`` scores through
a fused nn.LSTM copy of whatever encoder it holds.
"""

from __future__ import annotations

import torch
from opacus.layers import DPLSTM
from torch import nn

from fedrec.errors import ConfigError


def private_lstm(lstm: nn.LSTM) -> DPLSTM:
    """A DPLSTM of ``lstm``'s shape holding its weights (copies, same ``requires_grad``)."""
    if lstm.proj_size:
        raise ConfigError(f"an LSTM with proj_size={lstm.proj_size} has no Opacus DPLSTM; build it with proj_size=0 "
                          "to train it privately.")
    # DPLSTM draws its own initial weights; they are overwritten at once, and the draw must not
    # move the global generator that the rest of training (dropout, negatives) reads.
    with torch.random.fork_rng(devices=[]):
        private = DPLSTM(lstm.input_size, lstm.hidden_size, num_layers=lstm.num_layers, bias=lstm.bias,
                         batch_first=lstm.batch_first, dropout=lstm.dropout, bidirectional=lstm.bidirectional)
    private.load_state_dict(lstm.state_dict())
    trainable = {name: p.requires_grad for name, p in lstm.named_parameters()}
    for name, parameter in private.named_parameters():
        parameter.requires_grad_(trainable[name])
    private.train(lstm.training)
    return private


def make_private_layers(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.LSTM`` in it replaced by ``private_lstm`` of it (in place;
    a bare nn.LSTM comes back as its DPLSTM). Build the optimizer after this call: the
    swapped layers' parameters are new tensors."""
    if isinstance(module, nn.LSTM):
        return private_lstm(module)
    swaps = [(name, child) for name, child in module.named_modules() if isinstance(child, nn.LSTM)]
    for name, lstm in swaps:
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attribute, private_lstm(lstm))
    return module
