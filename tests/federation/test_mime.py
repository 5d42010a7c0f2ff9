"""MimeLite: client steps are Adam's from the server's moments, the server's moments follow
the clients' gradient statistics, they survive resume, and settings it does not fit are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from flwr.serverapp.strategy import FedAvg
from torch import nn

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError, ModelError
from fedrec.federation.drift import check_drift_correction
from fedrec.federation.mime import BETA_2, STEP, ClientMime, MimeStatistics

BETA_1 = 0.9

from tests.federation.test_simulation import SMALL, resumed_and_unbroken


def _loss(net: nn.Module, round_number: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(round_number)
    x, y = torch.randn(16, 5, generator=generator), torch.randn(16, 3, generator=generator)
    return ((net(x) - y) ** 2).mean()


@pytest.mark.parametrize("beta_1", [BETA_1, 0.0])
def test_one_client_one_step_per_round_is_centralised_adam(beta_1):
    """With one client taking one step a round, the round's mean gradient is that step's
    gradient, so server moments + frozen client step must reproduce Adam step for step."""
    torch.manual_seed(0)
    adam_net, mime_net = nn.Linear(5, 3), nn.Linear(5, 3)
    mime_net.load_state_dict(adam_net.state_dict())
    adam = torch.optim.Adam(adam_net.parameters(), lr=0.05, betas=(beta_1, BETA_2), eps=1e-8)
    server = MimeStatistics(FedAvg(), beta_1=beta_1)
    shared = [name for name, _ in mime_net.named_parameters()]
    for round_number in range(1, 8):
        adam.zero_grad()
        _loss(adam_net, round_number).backward()
        adam.step()

        client = ClientMime({k: torch.from_numpy(v) for k, v in server.state.items()}, mime_net, shared=shared, beta_1=beta_1)
        sgd = torch.optim.SGD(mime_net.parameters(), lr=0.05)
        sgd.zero_grad()
        _loss(mime_net, round_number).backward()
        client.before_step()
        sgd.step()
        server.absorb([{k: v.numpy() for k, v in client.finish().items()}], [1.0])

        for a, b in zip(adam_net.parameters(), mime_net.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert int(server.state[STEP][0]) == 7
    np.testing.assert_allclose(server.state["v/weight"], adam.state[adam_net.weight]["exp_avg_sq"].numpy(), rtol=1e-5, atol=1e-9)
    if beta_1:
        np.testing.assert_allclose(server.state["m/weight"], adam.state[adam_net.weight]["exp_avg"].numpy(), rtol=1e-5, atol=1e-7)
    else:  # Adam's first moment is the current gradient: nothing to keep or send
        assert not any(key.startswith("m/") for key in server.state)


def test_server_moments_move_by_the_example_weighted_client_statistics():
    server = MimeStatistics(FedAvg(), beta_1=BETA_1)
    replies = [{"g/w": np.array([1.0, 0.0]), "g2/w": np.array([4.0, 1.0])},
               {"g/w": np.array([-1.0, 2.0]), "g2/w": np.array([0.0, 1.0])}]
    server.absorb(replies, [3.0, 1.0])
    np.testing.assert_allclose(server.state["m/w"], (1 - BETA_1) * np.array([0.5, 0.5]))
    np.testing.assert_allclose(server.state["v/w"], (1 - BETA_2) * np.array([3.0, 1.0]))
    server.absorb(replies, [3.0, 1.0])
    np.testing.assert_allclose(server.state["m/w"], (1 - BETA_1 ** 2) * np.array([0.5, 0.5]))
    assert int(server.state[STEP][0]) == 2


def test_moments_of_another_model_are_refused():
    net = nn.Linear(5, 3)
    with pytest.raises(ModelError, match="disagree on the model"):
        ClientMime({"m/weight": torch.zeros(4, 4)}, net, shared=["weight", "bias"], beta_1=BETA_1)


def test_mime_simulation_checkpoints_the_moments_and_a_resumed_run_ends_where_an_unbroken_one_does(chain_file, tmp_path):
    args = ["--model", "lstm", "--data", str(chain_file), "--num-clients", "3", *SMALL, "--optimizer", "adam",
            "--strategy", "fedavg", "--drift-correction", "mime", "--mime-momentum", "0.9"]
    out, unbroken = resumed_and_unbroken(args, tmp_path)

    checkpoint = torch.load(out / "checkpoints" / "round-0002.pt", weights_only=True)
    moments = checkpoint["server_optimizer"]
    assert int(moments["mime/step"][0]) == 2
    names = set(checkpoint["state"])
    assert {k.split("/", 2)[2] for k in moments if k.startswith("mime/m/")} == names
    assert {k.split("/", 2)[2] for k in moments if k.startswith("mime/v/")} == names
    assert all(float(moments[f"mime/v/{name}"].min()) >= 0 for name in names)
    assert any(float(moments[f"mime/m/{name}"].abs().max()) > 0 for name in names)
    end = torch.load(unbroken / "checkpoints" / "round-0002.pt", weights_only=True)
    for name, value in end["state"].items():
        torch.testing.assert_close(checkpoint["state"][name], value, rtol=0, atol=1e-5)
    for key, value in end["server_optimizer"].items():
        torch.testing.assert_close(moments[key], value, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("train_changes", "federation_changes", "message"),
    [
        ({"optimizer": "sgd"}, {}, "--optimizer adam"),
        ({"model": "mf"}, {}, "--model lstm"),
        ({"dp": "local", "noise_multiplier": 1.0}, {}, "DP"),
        ({"dp": "central", "noise_multiplier": 1.0}, {}, "DP"),
        ({}, {"keep_optimizer_state": True}, "keep-optimizer-state"),
    ],
)
def test_mime_refuses_settings_it_does_not_fit(train_changes, federation_changes, message):
    train = TrainConfig(model="lstm", optimizer="adam", lr=3e-3)
    federation = FederationConfig(drift_correction="mime")
    with pytest.raises(ConfigError, match=message):
        check_drift_correction(dataclasses.replace(train, **train_changes), dataclasses.replace(federation, **federation_changes))


@pytest.mark.parametrize("momentum", [-0.1, 1.0])
def test_mime_momentum_outside_zero_to_one_is_refused(momentum):
    with pytest.raises(ConfigError, match="mime_momentum"):
        FederationConfig(drift_correction="mime", mime_momentum=momentum)
