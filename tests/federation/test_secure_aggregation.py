"""--secagg: Flower's SecAgg+ under fedrec's own strategies, on real Ray workers (small data).
The deployment over TLS is in test_deployment.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import resolved
from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import load_dataset
from fedrec.errors import ConfigError
from fedrec.federation.checks import check_run
from fedrec.federation.secure_aggregation import clipped_coordinates, error_bound, protocol_sizes
from test_simulation import SMALL, fedrec


@pytest.mark.parametrize("sampled", [3, 4, 5, 10, 11, 12, 50, 223, 1000])
@pytest.mark.parametrize("shares", [0, 3, 5, 11, 21])
def test_protocol_sizes_never_give_flowers_mod_an_even_neighbourhood(sampled, shares):
    # An even share count below the sample size makes secaggplus_mod build one neighbour more
    # than it has shares: every client fails. A majority of the neighbourhood rebuilds a key.
    k, threshold = protocol_sizes(sampled, shares)
    assert 3 <= k <= sampled
    assert k % 2 == 1 or k == sampled
    assert threshold == k // 2 + 1 and 2 <= threshold <= k


def test_every_store_is_a_neighbour_in_small_rounds_and_log_many_in_large():
    assert protocol_sizes(7) == (7, 4)
    assert protocol_sizes(50)[0] == 13  # 2 * ceil(log2 50) + 1
    assert protocol_sizes(20)[0] == 11


def test_an_even_share_count_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="odd"):
        FederationConfig(secagg_shares=10)


@pytest.mark.parametrize("settings, named", [
    ({"dp": "central"}, "--dp central"),
    ({"drift_correction": "mime"}, "mime"),
    ({"drift_correction": "scaffold"}, "scaffold"),
    ({"touched_rows": True}, "--touched-rows"),
    ({"num_clients": 2}, "at least 3"),
])
def test_what_secure_aggregation_cannot_combine_with_is_refused_before_the_run(chain_file, settings, named):
    train = TrainConfig(model="lstm", data=str(chain_file), noise_multiplier=1.0, optimizer="sgd" if "scaffold" in str(settings) else None,
                        dp=settings.pop("dp", "off"))
    train, federation = resolved(train, FederationConfig(secagg=True, **settings))
    with pytest.raises(ConfigError, match=named):
        check_run(train, federation, load_dataset(str(chain_file)))


@pytest.mark.parametrize("model", ["lstm", "mf"])
def test_the_recipe_under_secagg_drops_what_reads_single_stores(chain_file, model):
    _, plain = resolved(TrainConfig(model=model, data=str(chain_file)), FederationConfig())
    secure_train, secure = resolved(TrainConfig(model=model, data=str(chain_file)), FederationConfig(secagg=True))
    assert plain.touched_rows is True and secure.touched_rows is False
    assert secure.drift_correction == "none"
    # Client Adam without Mime stalls: the sequence models take the SGD recipe under SecAgg+.
    assert (secure_train.optimizer, secure.client_lr_decay) == (("sgd", 0.97) if model == "lstm" else ("sgd", 0.95))
    explicit, _ = resolved(TrainConfig(model=model, data=str(chain_file), optimizer="adam"), FederationConfig(secagg=True))
    assert explicit.optimizer == "adam"  # an explicit choice wins
    check_run(secure_train, secure, load_dataset(str(chain_file)))


def test_clipped_coordinates_counts_after_weighting():
    deltas = [np.array([0.5, -2.0, 3.0]), np.array([[4.0]])]
    assert clipped_coordinates(deltas, num_examples=100, max_weight=100, clip=1.0) == 3
    assert clipped_coordinates(deltas, num_examples=25, max_weight=100, clip=1.0) == 0  # weight 1/4


def test_error_bound_grows_with_the_clip_and_shrinks_with_the_weights():
    assert error_bound([10, 10], 10, 2.0) == pytest.approx(2 * error_bound([10, 10], 10, 1.0))
    assert error_bound([100, 100, 100], 100, 1.0) < error_bound([100, 10, 1], 100, 1.0)
    assert error_bound([0, 0], 10, 1.0) == 0.0  # nobody trained: nothing averaged


@pytest.mark.parametrize("model", ["lstm", "mf"])
def test_a_secagg_round_gives_the_plain_model_within_the_stated_error(chain_file, tmp_path, model):
    """Five stores, one round, once under SecAgg+ and once in clear with the same recipe:
    the global models agree within the run's own error bound (plus float32 rounding), and
    every tensor the server wrote is a global one. With the release gate (LSTM), the audit's
    item popularity, summed by SecAgg+, is the exact one."""
    gate = [flag for flag in SMALL if flag != "--no-release-gate"] if model == "lstm" else SMALL
    common = ["--model", model, "--data", str(chain_file), "--partition", "store", "--num-clients", "5",
              "--rounds", "1", "--local-epochs", "1", "--optimizer", "adam", *gate]  # one optimizer in both arms
    runs = {}
    for name, extra in (("secure", ["--secagg"]), ("plain", ["--no-touched-rows", "--drift-correction", "none"])):
        runs[name] = tmp_path / name
        result = fedrec("simulate", *common, *extra, "--out", str(runs[name]))
        assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((runs["secure"] / "metrics.json").read_text())["rounds"][0]
    assert record["failures"] == 0 and record["secagg_clipped"] == 0
    assert 0 < record["secagg_error_bound"] < 1e-4
    plain_record = json.loads((runs["plain"] / "metrics.json").read_text())["rounds"][0]
    assert record["bytes_received"] > plain_record["bytes_received"]  # 64-bit masked integers, keys and shares

    secure = torch.load(runs["secure"] / "checkpoints" / "round-0001.pt", weights_only=True)
    plain = torch.load(runs["plain"] / "checkpoints" / "round-0001.pt", weights_only=True)
    assert secure["state"].keys() == plain["state"].keys()
    for key, value in plain["state"].items():
        float32_rounding = 4 * np.finfo(np.float32).eps * float(value.abs().max())
        difference = float((secure["state"][key] - value).abs().max())
        assert difference <= record["secagg_error_bound"] + float32_rounding, key
    # One tensor per model parameter (the model; FedAvgM's momentum) in everything the server
    # wrote: no room for five stores' arrays.
    globals_only = set(secure["state"]) | {f"momentum/{index}" for index in range(len(secure["state"]))}
    for path in runs["secure"].rglob("*.pt"):
        if "client_state" in path.parts:  # the stores' own disks in a deployment
            continue
        saved = torch.load(path, weights_only=True)
        tensors = {name: tensor for name, tensor in {**saved["state"], **saved.get("server_optimizer", {})}.items()
                   if tensor.numel() > 0}  # MF's release holds an empty user table: users stay on their stores
        assert set(tensors) <= globals_only, path
    if model == "lstm":
        audits = {name: json.loads((run / "audit" / "audit.json").read_text()) for name, run in runs.items()}
        assert audits["secure"]["popularity"]["popularity_source"] == "training-interactions"
        assert audits["secure"]["popularity"]["head_items"] == audits["plain"]["popularity"]["head_items"]
        # the test users' per-item profile reaches the server only as SecAgg+'s (rounded) sum
        assert audits["secure"]["popularity"]["arp_consumed"] == pytest.approx(audits["plain"]["popularity"]["arp_consumed"],
                                                                                abs=1e-4)
