"""SCAFFOLD drift correction: the client's correction and control variate, the server's
average of them, and refusals of settings it does not fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import resolved
from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import leave_one_out
from fedrec.data.partition import client_interactions
from fedrec.errors import ConfigError, ModelError
from fedrec.federation import wire
from fedrec.federation.client import locate_site, partitioned, train_client
from fedrec.federation.drift import check_drift_correction
from fedrec.federation.scaffold import control_file
from fedrec.models import create_model

from tests.federation.test_simulation import SMALL, resumed_and_unbroken


def configs(chain_file) -> tuple[TrainConfig, FederationConfig]:
    train = TrainConfig(model="lstm", data=str(chain_file), dim=8, batch_size=16, optimizer="sgd", lr=0.5, threads=1)
    return resolved(train, FederationConfig(partition="store", num_clients=3, rounds=2, drift_correction="scaffold"))


def test_scaffold_client_keeps_its_control_variate_home_and_corrects_only_by_the_difference(chain_file, tmp_path):
    train, federation = configs(chain_file)
    site = locate_site({wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path / "scaffold"))
    plain_site = dataclasses.replace(site, state_dir=tmp_path / "plain")
    plain = dataclasses.replace(federation, drift_correction="none")
    data, _ = partitioned(train, federation)
    start = create_model("lstm", train, n_users=0, n_items=data.n_items).shareable_state()
    model = create_model("lstm", train, n_users=site.data.n_users, n_items=site.data.n_items)
    steps = federation.local_epochs * model.batches(leave_one_out(site.data), np.random.default_rng(0))[1]

    # Round 1: c = c_i = 0, so the steps are plain SGD's, and c_i becomes (x - y) / (K lr).
    first = train_client(site, train, federation, start, round_number=1, global_control={})
    reference = train_client(plain_site, train, plain, start, round_number=1)
    assert all(torch.equal(first.shared[k], reference.shared[k]) for k in start)
    own = torch.load(control_file(site.state_dir, site.name), weights_only=True)
    for name, c_i in own.items():
        torch.testing.assert_close(c_i, (start[name] - first.shared[name]) / (steps * train.lr))
        torch.testing.assert_close(first.control_change[name], c_i)  # from zero
    assert set(own) == {n for n, _ in model.net.named_parameters()}  # parameters only, never buffers

    # Round 2 with the server's c equal to this c_i: the correction c - c_i is zero again.
    second = train_client(site, train, federation, start, round_number=2, global_control=own)
    reference = train_client(plain_site, train, plain, start, round_number=2)
    assert all(torch.equal(second.shared[k], reference.shared[k]) for k in start)

    # Any other c moves the steps: the correction is applied.
    shifted = {name: c + 0.1 for name, c in own.items()}
    third = train_client(site, train, federation, start, round_number=2, global_control=shifted)
    assert not all(torch.equal(third.shared[k], reference.shared[k]) for k in start)


def test_server_control_variate_is_the_weighted_average_of_the_clients_and_survives_resume(chain_file, tmp_path):
    args = ["--model", "lstm", "--data", str(chain_file), "--num-clients", "3", *SMALL, "--optimizer", "sgd", "--lr", "0.5",
            "--drift-correction", "scaffold"]
    out, unbroken = resumed_and_unbroken(args, tmp_path)

    checkpoint = torch.load(out / "checkpoints" / "round-0002.pt", weights_only=True)
    control = {k.split("/", 1)[1]: v for k, v in checkpoint["server_optimizer"].items() if k.startswith("control/")}
    assert control, "the server's c belongs in the checkpoint"
    # c = sum_i p_i c_i with p_i each store's share of train examples (every store trains each round).
    data, partition = partitioned(*configs(chain_file))
    weights, owns = [], []
    for index in range(3):
        split = leave_one_out(client_interactions(data, partition, index))
        weights.append(sum(max(0, len(s) - 1) for s in split.train))
        owns.append(torch.load(control_file(out / "client_state", f"store-{index}"), weights_only=True))
    for name, c in control.items():
        expected = sum(w * own[name].double() for w, own in zip(weights, owns)) / sum(weights)
        torch.testing.assert_close(c.double(), expected, rtol=1e-5, atol=1e-6)
    # A resumed run continues c (restarted at zero, c misses the average above by ~2e-3) and ends
    # where the unbroken run ends, up to float rounding: three replies are summed in arrival order.
    end = torch.load(unbroken / "checkpoints" / "round-0002.pt", weights_only=True)
    for name, value in end["state"].items():
        torch.testing.assert_close(checkpoint["state"][name], value, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("train_changes", "federation_changes", "message"),
    [
        ({"optimizer": "adam"}, {}, "--optimizer sgd"),
        ({"dp": "local", "noise_multiplier": 1.0}, {}, "DP"),
        ({"dp": "central", "noise_multiplier": 1.0}, {}, "DP"),
        ({}, {"keep_optimizer_state": True}, "keep-optimizer-state"),
    ],
)
def test_scaffold_refuses_settings_its_correction_does_not_fit(chain_file, train_changes, federation_changes, message):
    train, federation = configs(chain_file)
    with pytest.raises(ConfigError, match=message):
        check_drift_correction(dataclasses.replace(train, **train_changes), dataclasses.replace(federation, **federation_changes))


def test_unknown_drift_correction_is_refused():
    with pytest.raises(ConfigError, match="none, scaffold"):
        FederationConfig(drift_correction="fedprox")


def test_a_control_variate_of_another_model_is_refused(chain_file, tmp_path):
    train, federation = configs(chain_file)
    site = locate_site({wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    data, _ = partitioned(train, federation)
    start = create_model("lstm", train, n_users=0, n_items=data.n_items).shareable_state()
    wider = {name: torch.zeros(*[d + 1 for d in value.shape]) for name, value in start.items() if value.is_floating_point()}
    torch.save(wider, control_file(site.state_dir, site.name))
    with pytest.raises(ModelError, match="Move .* away"):
        train_client(site, train, federation, start, round_number=1, global_control={})
