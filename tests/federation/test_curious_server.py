"""The honest-but-curious server attacks the stores with everything it holds: the code, the run
config (its seed), the stores' names, their ledgers and every message. Each attack runs the
store's own library code, fails against the defaults, and succeeds against a planted weakness:
a test fixture that patches the code under test (never a switch in the library)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.task_identity import TaskIdentity

from fedrec.config import TrainConfig
from fedrec.data import leave_one_out
from fedrec.errors import FloorRefused
from fedrec.federation import client_app
from fedrec.federation import wire
from fedrec.federation.client import ClientSite, distributed_round
from fedrec.federation.secure_aggregation import distributed_protocol_sizes
from fedrec.federation.store_floor import StoreFloor
from fedrec.models import create_model
from fedrec.privacy.budget import BudgetExhausted, ledger_file
from fedrec.privacy.distributed_dp import DistributedPlan
from fedrec.privacy.dp_sgd import noisy_gradient_sum
from fedrec.privacy.noise_check import CHECK_COORDINATES, CHECK_KEY
from fedrec.privacy.opacus_layers import make_private_layers
from fedrec.release.fixed_vocabularies import fixed_vocabularies
from fedrec.privacy.ledger import load_ledger
from fedrec.privacy.secret_noise import SecretNoise
from fedrec.training import noise_share

SEED = 42  # the run config's seed: the server sent it, so it knows it
NOISE = 200.0  # large enough that a share's noise dwarfs any clipped sum of this small store's customers
TRAIN = TrainConfig(model="lstm", dp="local", noise_multiplier=NOISE, dim=8, batch_size=16, lr=0.01, threads=1, seed=SEED)


def _plan(customers: int) -> DistributedPlan:
    return DistributedPlan(noise_multiplier=NOISE, sample_rate=0.2, max_grad_norm=1.0, survivors=3, customers=3 * customers,
                           rounds=10, delta=1e-5, accountant="rdp")


@pytest.fixture
def store(chain_split, tmp_path) -> ClientSite:
    data, _ = chain_split
    return ClientSite(name="store-0", data=data, state_dir=tmp_path / "store-0")


def _global_state(store: ClientSite, salt: int = 0) -> dict[str, torch.Tensor]:
    """What the server sent: the global model (``salt`` gives another round's model)."""
    model = create_model("lstm", dataclasses.replace(TRAIN, seed=SEED + salt), n_users=0, n_items=store.data.n_items)
    return model.shareable_state()


def _flat(arrays: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([arrays[key].reshape(-1).double() for key in sorted(arrays)])


@pytest.fixture
def seeded_noise(monkeypatch):
    """Planted weakness: the store's key derived from public values (the run seed), as fedrec did
    before issue 30 (crc32 of seed/store/round)."""
    monkeypatch.setattr(SecretNoise, "fresh", classmethod(lambda cls: cls(hashlib.sha256(f"seed={SEED}".encode()).digest())))


@pytest.fixture
def reanswered_round(monkeypatch):
    """Planted weakness: a store answers a round it already answered."""
    monkeypatch.setattr(noise_share, "refuse_answered_round", lambda *args, **kwargs: None)


def server_regenerates_the_noise(share: dict[str, torch.Tensor], store: ClientSite, global_state, plan, round_number) -> bool:
    """The attack: run the store's own noise code in the server's process, with the model the
    server sent and no customer sampled (rate 0 reads nobody's data), and subtract what it drew.
    A noise-free share is a clipped sum over the store's customers: norm at most clip x customers;
    anything more is noise the server could not remove."""
    model = create_model("lstm", TRAIN, n_users=store.data.n_users, n_items=store.data.n_items)
    model.load_partial_state(global_state)
    split = leave_one_out(store.data)
    model.prepare_private(split)
    make_private_layers(model.net)  # the store's code: the noise is drawn over the private layers' parameters
    _, _, check = noisy_gradient_sum(model, split, sample_rate=0.0, max_grad_norm=plan.max_grad_norm,
                                     noise_std=plan.noise_share_std, noise=SecretNoise.fresh(), round_number=round_number,
                                     check=CHECK_COORDINATES)  # the share's noise and its check coordinates, one draw
    guessed = {**{name: p.grad for name, p in model.shared_parameters().items()}, CHECK_KEY: check}
    residual = _flat(share) - _flat(guessed)
    return float(residual.norm()) <= plan.max_grad_norm * store.data.n_users


def _share(store: ClientSite, plan: DistributedPlan, round_number: int, salt: int = 0) -> dict[str, torch.Tensor]:
    return distributed_round(store, TRAIN, _global_state(store, salt), round_number, plan, run="run-1").shared


def test_the_server_cannot_regenerate_a_stores_noise_share(store):
    plan = _plan(store.data.n_users)
    share = _share(store, plan, 1)
    noise_norm = plan.noise_share_std * _flat(share).numel() ** 0.5
    assert noise_norm > 10 * plan.max_grad_norm * store.data.n_users  # the attack's test can tell noise from data
    assert not server_regenerates_the_noise(share, store, _global_state(store), plan, 1)


def test_the_noise_regeneration_attack_strips_seeded_noise(store, seeded_noise):
    plan = _plan(store.data.n_users)
    share = _share(store, plan, 1)
    assert server_regenerates_the_noise(share, store, _global_state(store), plan, 1)


def server_differences_two_answers(store: ClientSite, plan: DistributedPlan) -> bool:
    """The attack: ask round 1 twice, at two different models, and difference the answers; the
    same noise in both cancels, leaving two clipped sums (norm at most 2 x clip x customers)."""
    first = _share(store, plan, 1)
    try:
        second = _share(store, plan, 1, salt=1)
    except BudgetExhausted:  # the store refused to answer round 1 again
        return False
    return float((_flat(first) - _flat(second)).norm()) <= 2 * plan.max_grad_norm * store.data.n_users


def test_a_store_answers_each_round_once_and_says_why(store):
    plan = _plan(store.data.n_users)
    assert not server_differences_two_answers(store, plan)
    ledger = load_ledger(ledger_file(store.state_dir, store.name))
    assert [r["round"] for r in ledger.rounds] == [1] and ledger.steps == 1  # one release, accounted once
    assert "already answered" in ledger.refused[-1]["reason"]


def test_the_differencing_attack_strips_the_noise_of_a_reanswered_seeded_round(store, seeded_noise, reanswered_round):
    assert server_differences_two_answers(store, _plan(store.data.n_users))


@pytest.fixture
def server_process(monkeypatch):
    """The identity Flower gives the process that builds messages (a ServerApp's)."""
    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


def _setup_message(threshold: int, sampled: int) -> Message:
    """The first SecAgg+ message of a round, as Flower's SecAggPlusWorkflow sends it."""
    protocol = ConfigRecord({Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: sampled, Key.SHARE_NUMBER: sampled,
                             Key.THRESHOLD: threshold, Key.CLIPPING_RANGE: 8.0, Key.TARGET_RANGE: 2**22,
                             Key.MOD_RANGE: 2**32, Key.MAX_WEIGHT: 1.0})
    message = Message(content=RecordDict({RECORD_KEY_CONFIGS: protocol}), dst_node_id=7, message_type=MessageType.TRAIN)
    return message


def _context(node_config: dict) -> Context:
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def server_sets_up_a_sum_below_the_floor(threshold: int, sampled: int, node_config: dict) -> bool:
    """The attack: start SecAgg+ with a threshold below the store's floor; it succeeds when the
    store's ClientApp answers the setup (its public keys), i.e. takes part in that sum."""
    def never(message, context):
        raise AssertionError("the setup stage does not train")

    try:
        reply = client_app.secure_aggregation_when_asked(_setup_message(threshold, sampled), _context(node_config), never)
    except FloorRefused:
        return False
    return RECORD_KEY_CONFIGS in reply.content.config_records


def test_a_store_with_floor_nine_refuses_a_sum_of_seven(server_process):
    floor = {"min-sum-stores": 9}
    assert not server_sets_up_a_sum_below_the_floor(7, 10, floor)
    assert server_sets_up_a_sum_below_the_floor(9, 10, floor)  # at its floor it takes part
    assert server_sets_up_a_sum_below_the_floor(7, 10, {})  # no floor of its own: the protocol's (2)


def test_the_setup_attack_succeeds_against_a_store_that_skips_its_floor(monkeypatch, server_process):
    monkeypatch.setattr(StoreFloor, "check_unmasking", lambda self, threshold, sampled: None)
    assert server_sets_up_a_sum_below_the_floor(7, 10, {"min-sum-stores": 9})


def test_the_server_never_lowers_the_threshold_below_the_plans_survivors():
    assert distributed_protocol_sizes(10, 9) == (10, 9)
    assert distributed_protocol_sizes(9, 9) == (9, 1.0)  # every share needed
    with pytest.raises(ValueError, match="not started"):
        distributed_protocol_sizes(7, 9)


def test_a_distributed_round_below_the_stores_floor_or_noise_is_refused():
    plan = DistributedPlan(noise_multiplier=0.8, sample_rate=0.1, max_grad_norm=1.0, survivors=7, customers=100,
                           rounds=10, delta=1e-5, accountant="rdp")
    with pytest.raises(FloorRefused, match="floor is 9"):
        StoreFloor(min_sum_stores=9).check_plan(plan, threshold=7)
    with pytest.raises(FloorRefused, match="less noise|9 shares|carry less noise"):
        StoreFloor().check_plan(dataclasses.replace(plan, survivors=9), threshold=7)
    with pytest.raises(FloorRefused, match="in clear"):
        StoreFloor(min_sum_stores=2).check_plan(plan, threshold=None)
    with pytest.raises(FloorRefused, match="below this store's floor"):
        StoreFloor(min_noise_multiplier=1.0).check_plan(plan, threshold=9)
    StoreFloor(min_sum_stores=7, min_noise_multiplier=0.8).check_plan(plan, threshold=7)  # at the floor: accepted


def server_reads_a_stores_item_profile(store: ClientSite, *, secure: bool) -> bool:
    """The attack: from a store's answer to the release audit's query (under --secagg or DP
    the server sends fixed vocabularies), read which items its test users hold (the per-item
    profile weights); it succeeds when the reply holds them and they match."""
    settings = {wire.AUDIT_TOP_K: 10, wire.AUDIT_N_BOOT: 20, wire.AUDIT_SEED: 0, wire.AUDIT_THRESHOLD: 3}
    if secure:
        settings[wire.AUDIT_VOCABULARIES] = json.dumps(fixed_vocabularies())
    reply = client_app.audit_reply(store, dataclasses.replace(TRAIN, dp="off"), _global_state(store), settings, None)
    profile = reply[wire.ARRAYS].get("exposure/profile-weight")
    if profile is None:
        return False
    held = {int(item) for history in leave_one_out(store.data).test.histories for item in history}
    return set(np.flatnonzero(profile.numpy()).tolist()) == held


def test_under_secagg_the_audit_reply_holds_no_item_profile(store):
    assert server_reads_a_stores_item_profile(store, secure=False)  # in clear (no --secagg): named in the report
    assert not server_reads_a_stores_item_profile(store, secure=True)


def test_the_profile_attack_reads_a_store_that_sends_its_audit_sums_in_clear(store, monkeypatch):
    """Planted weakness: the store sends its sums where only their layout should go."""
    monkeypatch.setattr(client_app, "layout", lambda packed: packed)
    assert server_reads_a_stores_item_profile(store, secure=True)


# Devices in shards under central DP (fedrec.federation.device_central_dp): the server holds the
# run config, the code, the cohort it drew and every shard's reply. A shard's reply is a sum of
# its sampled devices' clipped updates, so even a shard with one sampled device shows the server
# no device's unclipped update.
DEVICE_SHARDS = 3
COHORT = [0, 1, 4]  # shard 0 holds device 0 alone; shard 1 holds devices 1 and 4 (d mod 3); shard 2 none


@pytest.fixture
def device_run(tmp_path):
    """(train, federation, global state) of a --dp central run on 12 one-user devices in 3 shards."""
    from conftest import resolved, write_chain_sequences
    from fedrec.config import FederationConfig
    from fedrec.federation.client import partitioned

    data = write_chain_sequences(tmp_path / "devices.txt", n_users=12, n_items=10)
    train = TrainConfig(model="lstm", data=str(data), dp="central", noise_multiplier=NOISE, max_grad_norm=1e-3, dim=8,
                        dropout=0.0, threads=1, seed=SEED)
    train, federation = resolved(train, FederationConfig(partition="user", device_shards=DEVICE_SHARDS, fraction=0.5))
    n_items = partitioned(train, federation)[0].n_items
    return train, federation, create_model("lstm", train, n_users=0, n_items=n_items).shareable_state()


@pytest.fixture
def unclipped_devices(monkeypatch):
    """Planted weakness: a shard that sends its devices' updates as they are (no clipping)."""
    from fedrec.federation import device_central_dp

    monkeypatch.setattr(device_central_dp, "clip_update", lambda update, *, clipping_norm: 0.0)


def _flat_update(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(arrays[k], dtype=np.float64).reshape(-1) for k in sorted(arrays)])


def unclipped_update(train, federation, global_state, device: int) -> np.ndarray:
    """The oracle (never the server's): the device's own update, trained as a device trains."""
    from fedrec.federation.client import locate_site, partitioned, train_client

    n_devices = partitioned(train, federation)[1].num_clients
    site = locate_site({wire.NODE_PARTITION_ID: device, wire.NODE_NUM_PARTITIONS: n_devices}, train, federation, None)
    shared = train_client(site, train, federation, global_state, 1).shared
    return _flat_update({k: (shared[k].double() - v.double()).numpy() for k, v in global_state.items() if v.is_floating_point()})


def server_reads_an_unclipped_device_update(train, federation, global_state) -> bool:
    """The attack, on every shard's reply to one round: a reply longer than its devices' clips
    carries unclipped updates; a reply of one device is read as that device's update, and the
    attack succeeds when it equals the device's unclipped update (longer than the clip here)."""
    from fedrec.federation.device_shards import hosted, train_shard

    for shard in range(DEVICE_SHARDS):
        devices = hosted(COHORT, shard, DEVICE_SHARDS)
        node = {wire.NODE_PARTITION_ID: shard, wire.NODE_NUM_PARTITIONS: DEVICE_SHARDS}
        arrays, metrics, _ = train_shard(node, train, federation, global_state, 1, COHORT, state_dir=None, run="run-1")
        reply = _flat_update(arrays)
        assert metrics[wire.NUM_USERS] == len(devices)  # the cohort: the server drew it, it knows it anyway
        if np.linalg.norm(reply) > len(devices) * train.max_grad_norm * (1 + 1e-5):
            return True
        if len(devices) == 1:
            truth = unclipped_update(train, federation, global_state, devices[0])
            assert np.linalg.norm(truth) > 10 * train.max_grad_norm  # so clipping changes it
            if np.allclose(reply, truth, rtol=1e-4, atol=1e-8):
                return True
    return False


def test_a_shard_reply_under_central_dp_shows_no_devices_unclipped_update(device_run):
    assert not server_reads_an_unclipped_device_update(*device_run)


def test_the_update_attack_reads_a_shard_that_skips_the_devices_clip(device_run, unclipped_devices):
    assert server_reads_an_unclipped_device_update(*device_run)


def outsider_strips_the_servers_noise(train, federation, global_state) -> bool:
    """The attack of an outsider with the release before and after a round and the run config
    (its seed): run the server's own noise code (a zero sum, the key the code makes) and
    subtract what it drew. Without noise the step is the cohort's clipped sum over q x N, norm
    at most clip x cohort / (qN); anything longer is noise the outsider could not remove."""
    from flwr.app import Array, ArrayRecord
    from flwr.serverapp.strategy import FedAvg
    from fedrec.federation.device_central_dp import DeviceCentralDP, noisy_mean
    from fedrec.federation.device_shards import train_shard

    expected = federation.fraction * 12
    server = DeviceCentralDP(FedAvg(), noise_multiplier=train.noise_multiplier, clipping_norm=train.max_grad_norm,
                             expected_cohort=expected)
    server.global_arrays = ArrayRecord({key: Array(value.numpy()) for key, value in global_state.items()})
    sums = [ArrayRecord({k: Array(v) for k, v in train_shard({wire.NODE_PARTITION_ID: shard, wire.NODE_NUM_PARTITIONS: 3},
                                                             train, federation, global_state, 1, COHORT, state_dir=None,
                                                             run="run-1")[0].items()}) for shard in range(DEVICE_SHARDS)]
    released = server.release(sums)
    floats = {k: v.numpy() for k, v in global_state.items() if v.is_floating_point()}
    drawn = noisy_mean({k: np.zeros(v.shape) for k, v in floats.items()}, noise_multiplier=train.noise_multiplier,
                       clipping_norm=train.max_grad_norm, expected_cohort=expected, noise=SecretNoise.fresh())
    residual = _flat_update({k: released[k].astype(np.float64) - v - drawn[k] for k, v in floats.items()})
    noise_norm = train.noise_multiplier * train.max_grad_norm * residual.size ** 0.5 / expected
    assert noise_norm > 10 * len(COHORT) * train.max_grad_norm / expected  # the test can tell noise from the sum
    return float(np.linalg.norm(residual)) <= 1.01 * len(COHORT) * train.max_grad_norm / expected


def test_an_outsider_with_the_seed_cannot_strip_the_servers_noise(device_run):
    assert not outsider_strips_the_servers_noise(*device_run)


def test_the_noise_stripping_attack_succeeds_against_seeded_server_noise(device_run, seeded_noise):
    assert outsider_strips_the_servers_noise(*device_run)
