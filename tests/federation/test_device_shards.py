"""Devices hosted in shards of a few virtual SuperNodes (fedrec.federation.device_shards) train
the same federation as one SuperNode per device: the same aggregate, round by round."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType

from conftest import write_chain_sequences
from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.device_shards import ShardSum, check_device_shards, hosted, merge_touched_rows, sample_devices
from fedrec.federation.strategy import fill_untouched_rows
from test_simulation import fedrec


def test_the_round_samples_the_same_devices_from_the_seed_and_each_lives_on_one_shard():
    first = sample_devices(22363, 0.01, seed=42, round_number=3)
    assert first == sample_devices(22363, 0.01, seed=42, round_number=3) and len(first) == 224
    assert first != sample_devices(22363, 0.01, seed=42, round_number=4)
    shards = [hosted(first, shard, 4) for shard in range(4)]
    assert sorted(sum(shards, [])) == first and all(d % 4 == s for s, ds in enumerate(shards) for d in ds)


def _reply(arrays: dict[str, np.ndarray], weight: float) -> Message:
    request = Message(content=RecordDict(), dst_node_id=1, message_type=MessageType.TRAIN)
    content = RecordDict({wire.ARRAYS: ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                          wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: weight})})
    return Message(content=content, reply_to=request)


@pytest.mark.parametrize("row_averaging", [True, False])
def test_shards_average_to_what_the_devices_average_to(row_averaging, monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity
    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 3)).astype(np.float32)
    global_state = {"item_embedding.weight": torch.from_numpy(rows), "output.bias": torch.zeros(4)}
    devices, weights = [], [3.0, 1.0, 2.0, 5.0, 4.0]
    for device in range(5):  # each device trains two rows of its own and the dense layer
        trained = rows.copy()
        trained[[device % 6, (device + 2) % 6]] += rng.normal(size=(2, 3)).astype(np.float32)
        devices.append({"item_embedding.weight": trained, "output.bias": rng.normal(size=4).astype(np.float32)})
    # One reply per device, averaged as the per-device federation does it.
    tables = [d["item_embedding.weight"] for d in devices]
    if row_averaging:
        tables = fill_untouched_rows(rows, tables, weights)
    expected_rows = sum(w * t for w, t in zip(weights, tables)) / sum(weights)
    expected_bias = sum(w * d["output.bias"] for w, d in zip(weights, devices)) / sum(weights)
    # Two shards: devices 0, 2, 4 and 1, 3.
    replies = []
    for shard in (0, 1):
        total = ShardSum(global_state, ("item_embedding.weight",))
        for device in hosted(range(5), shard, 2):
            total.add({k: torch.from_numpy(v) for k, v in devices[device].items()}, weights[device], loss=1.0)
        arrays, metrics = total.reply(row_averaging=row_averaging)
        replies.append(_reply(arrays, metrics[wire.NUM_EXAMPLES]))
    if row_averaging:
        merge_touched_rows(replies)
    shard_weights = [float(r.content[wire.METRICS][wire.NUM_EXAMPLES]) for r in replies]
    got = {key: sum(w * r.content[wire.ARRAYS][key].numpy() for w, r in zip(shard_weights, replies)) / sum(shard_weights)
           for key in ("item_embedding.weight", "output.bias")}
    assert set(replies[0].content[wire.ARRAYS].keys()) == {"item_embedding.weight", "output.bias"}
    np.testing.assert_allclose(got["item_embedding.weight"], expected_rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["output.bias"], expected_bias, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("changes, named", [
    ({"dp": "local", "target_epsilon": 8.0}, "--dp central"), ({"secagg": True}, "SecAgg+"), ({"partition": "store"}, "--partition user"),
])
def test_what_a_shard_cannot_do_yet_is_refused(changes, named):
    train = TrainConfig(**{k: v for k, v in changes.items() if k in ("dp", "target_epsilon")})
    federation = FederationConfig(**{"partition": "user", "device_shards": 4,
                                     **{k: v for k, v in changes.items() if k in ("secagg", "partition")}})
    with pytest.raises(ConfigError, match=named):
        check_device_shards(train, federation)


def test_shards_take_central_dp_where_the_server_adds_the_noise():
    check_device_shards(TrainConfig(dp="central", noise_multiplier=1.0), FederationConfig(partition="user", device_shards=4))


FEDSGD = ["--optimizer", "sgd", "--lr", "10", "--local-epochs", "1", "--strategy", "fedadam", "--server-lr", "0.003",
          "--server-momentum", "0.9"]


def test_the_device_recipe_takes_the_summed_step_and_adam_does_not():
    from fedrec.federation.client import round_config, stepping_config
    from fedrec.federation.recipes import resolve_run
    from fedrec.federation.summed_step import summed_step_applies
    from fedrec.models import create_model

    for fields, expected in (({}, True), ({"optimizer": "adam"}, False), ({"local_epochs": 2}, False),
                             ({"weight_decay": 1e-4}, False)):
        train, federation = resolve_run(
            TrainConfig(model="lstm", **{k: v for k, v in fields.items() if k in TrainConfig.__dataclass_fields__}),
            FederationConfig(partition="user", **{k: v for k, v in fields.items() if k in FederationConfig.__dataclass_fields__}),
            item_attributes=False, simulated=True)
        stepping = stepping_config(round_config(train, federation, 1), federation)
        model = create_model("lstm", stepping, n_users=1, n_items=20)
        assert summed_step_applies(stepping, federation, model) is expected, fields
    mf_train, mf_federation = resolve_run(TrainConfig(model="mf", optimizer="sgd"), FederationConfig(partition="user", local_epochs=1),
                                          item_attributes=False, simulated=True)
    mf = create_model("mf", mf_train, n_users=1, n_items=20)
    assert not summed_step_applies(mf_train, mf_federation, mf)  # its user vector is private


ADAM = ["--optimizer", "adam", "--lr", "5e-3", "--strategy", "fedavgm"]


@pytest.mark.parametrize("recipe", [[*ADAM, "--drift-correction", "none"], [*ADAM, "--drift-correction", "mime"],
                                    [*FEDSGD, "--touched-rows"]],
                         ids=["client-adam", "mime", "summed-sgd-step"])
def test_shards_and_one_supernode_per_device_train_the_same_model(tmp_path, recipe):
    """Non-DP, every device each round (the same sample both ways), no dropout: the two engines'
    models after two rounds agree to float tolerance (they sum in another order). Under Mime the
    second round steps with the server's moments moved by the shards' (devices') statistics; with
    one SGD step a device the shards sum their devices in one batched pass (summed_step), its
    item rows counted over the devices that read them, under FedAdam (which once returned
    float64 and so counted every row as trained: 3e-4 apart at round 2)."""
    data = write_chain_sequences(tmp_path / "chains.txt", n_users=24, n_items=12)
    common = ["simulate", "--model", "lstm", "--data", str(data), "--partition", "user", "--fraction", "1", "--rounds", "2",
              "--dim", "8", "--dropout", "0", "--threads", "1", "--no-release-gate", *recipe]
    runs = {}
    for shards in ("3", "0"):
        out = tmp_path / f"shards-{shards}"
        result = fedrec(*common, "--device-shards", shards, "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        runs[shards] = torch.load(out / "model.pt", weights_only=False)["state"]
    assert runs["3"].keys() == runs["0"].keys()
    for key in runs["0"]:
        torch.testing.assert_close(runs["3"][key], runs["0"][key], rtol=1e-4, atol=1e-5, msg=key)
    assert not torch.equal(runs["0"]["item_embedding.weight"], torch.zeros_like(runs["0"]["item_embedding.weight"]))
