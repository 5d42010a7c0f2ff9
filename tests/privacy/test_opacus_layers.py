"""Models build nn.LSTM; private training swaps in Opacus' DPLSTM holding the same weights
(fedrec.privacy.opacus_layers): same outputs, same parameter names, the per-user gradients
Opacus computes through it are each user's own gradient, and a DP-SGD run trains it."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.layers import DPLSTM
from torch import nn

from fedrec.models import create_model
from fedrec.models.sequences import right_pad
from fedrec.privacy.dp_sgd import plan_dp
from fedrec.privacy.opacus_layers import make_private_layers
from fedrec.privacy.secret_noise import SecretNoise
from fedrec.training.private import train_private_epochs


class Tagger(nn.Module):
    """A small net with an LSTM inside: embedding -> LSTM -> linear, one loss per sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.rnn = nn.LSTM(4, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(self.embedding(sequences))  # (B, L, 5)
        return self.head(states[:, -1])  # (B, 3)


def test_a_swapped_lstm_gives_the_same_outputs_under_the_same_names():
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 6, batch_first=True)
    inputs = torch.randn(3, 7, 4)

    private = make_private_layers(lstm)

    assert isinstance(private, DPLSTM)
    assert set(private.state_dict()) == set(lstm.state_dict())  # registered in another order
    assert all(torch.equal(value, lstm.state_dict()[name]) for name, value in private.state_dict().items())
    torch.testing.assert_close(private(inputs)[0], lstm(inputs)[0], atol=1e-6, rtol=0)


def test_a_nested_lstm_is_swapped_in_place_once_and_the_global_generator_is_untouched():
    torch.manual_seed(0)
    net = Tagger()
    net.rnn.weight_hh_l0.requires_grad_(False)
    names = list(net.state_dict())
    torch.manual_seed(1)
    expected_draw = torch.rand(3)
    torch.manual_seed(1)

    assert make_private_layers(net) is net
    draw = torch.rand(3)
    swapped = net.rnn
    make_private_layers(net)

    assert isinstance(swapped, DPLSTM) and net.rnn is swapped  # a second call changes nothing
    assert torch.equal(draw, expected_draw)
    assert not net.rnn.weight_hh_l0.requires_grad and net.rnn.weight_ih_l0.requires_grad
    assert {k for k in net.state_dict() if not k.startswith("rnn.l")} == set(names)


def test_per_user_gradients_through_the_swapped_lstm_are_each_users_own_gradient():
    torch.manual_seed(0)
    plain = Tagger()
    private = make_private_layers(Tagger())
    private.load_state_dict(plain.state_dict(), strict=False)
    sequences = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 1, 2]])
    targets = torch.tensor([0, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = GradSampleModule(private, batch_first=True, loss_reduction="sum")

    nn.functional.cross_entropy(module(sequences), targets, reduction="sum").backward()

    parameters = dict(private.named_parameters())
    for user in range(len(sequences)):
        plain.zero_grad()
        nn.functional.cross_entropy(plain(sequences[user : user + 1]), targets[user : user + 1]).backward()
        for name, parameter in plain.named_parameters():
            torch.testing.assert_close(parameters[name].grad_sample[user], parameter.grad, atol=1e-6, rtol=1e-5,
                                       msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("name", ["lstm", "mlp"])
def test_dp_sgd_trains_a_sequence_model_built_with_nn_lstm(name, chain_split, fast_config):
    data, split = chain_split
    config = dataclasses.replace(fast_config, model=name, noise_multiplier=1.0, batch_size=16, dim=8)
    model = create_model(name, config, n_users=data.n_users, n_items=data.n_items)
    before = model.state()
    plan = plan_dp(model.config, records=len(model.private_samples(split)), planned_epochs=1)

    _, loss = train_private_epochs(model, split, 1, plan, [], noise=SecretNoise.fresh())

    after = model.state()
    assert np.isfinite(loss) and set(after) == set(before)
    assert any(not torch.equal(after[k], before[k]) for k in after)
    if name == "lstm":
        assert isinstance(model.net.rnn, DPLSTM)
    scores = model.score(np.zeros(2, dtype=np.int64), split.test.histories[:2])  # through the fused copy
    assert scores.shape == (2, data.n_items + 1) and torch.isfinite(scores).all()
    model.net.train()
    with torch.no_grad():
        trained = model.net.hidden(right_pad(split.test.histories[:2]))
    model.net.eval()
    with torch.no_grad():
        scored = model.net.hidden(right_pad(split.test.histories[:2]))
    torch.testing.assert_close(scored, trained, atol=1e-6, rtol=1e-5)
