"""The wire contract: every key a store sends, in every privacy mode, is one the contract names
and allows. Real simulations (the release gate's audit round and federated evaluation included)
record every reply each store's ClientApp lets out (a test-only sitecustomize watches the
contract's check); hand-made replies show what is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.supercore.task_identity import TaskIdentity

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.wire_contract import (
    CENTRAL, DISCLOSED, DISTRIBUTED, DISTRIBUTED_CLEAR, DP_MODES, LEGACY_METRICS, LOCAL, LOCAL_SECAGG, OFF, PER_STORE, SECAGG,
    SECURE_MODES, SUMMED_OVER_STORES, SUMMED_SECURELY, WireContractError, classify, disclosed_under,
)
from fedrec.privacy.modes import mode_names, privacy_mode
from test_simulation import fedrec

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wire_capture"
SMALL = ["--dim", "8", "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--fraction-evaluate", "1"]

# The message types its stores must have answered, by the mode's wire label.
ANSWERED = {
    OFF: {"train", "evaluate", "query.audit_counts", "query.audit"},
    SECAGG: {"train", "evaluate", "query.training_examples", "query.audit_counts", "query.audit"},
    LOCAL: {"train", "query", "query.audit_counts", "query.audit"},
    LOCAL_SECAGG: {"train", "query", "query.training_examples", "query.audit"},
    DISTRIBUTED: {"train", "query.private_customers", "query.audit"},
    DISTRIBUTED_CLEAR: {"train", "query", "query.private_customers", "query.audit"},
    CENTRAL: {"train", "evaluate", "query.audit_counts", "query.audit"},
}


def runs() -> list[tuple[str, bool]]:
    """Every registered privacy mode (the test-only ones too), with and without SecAgg+ where it allows."""
    found = []
    for name in mode_names():
        mode = privacy_mode(name)
        for secure in (mode.secagg_default, not mode.secagg_default):
            train, federation = _configs(mode, secure)
            try:
                mode.check(train, federation, every_parameter_shared=True, uses_popularity_prior=False)
            except ConfigError:
                continue
            found.append((name, secure))
    return found


def _configs(mode, secure: bool) -> tuple[TrainConfig, FederationConfig]:
    noise = {"target_epsilon": 8.0} if mode.stores_add_noise else {"noise_multiplier": 0.8} if mode.server_adds_noise else {}
    return TrainConfig(dp=mode.name, **noise), FederationConfig(partition="user" if mode.server_adds_noise else "store", secagg=secure)


def _flags(mode, secure: bool) -> list[str]:
    train, federation = _configs(mode, secure)
    flags = ["--dp", mode.name, "--secagg" if secure else "--no-secagg"]
    if train.target_epsilon is not None:
        flags += ["--target-epsilon", str(train.target_epsilon)]
    if train.noise_multiplier is not None:
        flags += ["--noise-multiplier", str(train.noise_multiplier)]
    if federation.partition == "user":  # the server clips each client: clients are users, a tenth a round
        return flags + ["--partition", "user", "--fraction", "0.1", "--strategy", "fedavg"]
    return flags + ["--partition", "store", "--num-clients", "3"]


@pytest.mark.parametrize("name, secure", runs())
def test_every_reply_of_every_mode_keeps_to_the_contract(name, secure, chain_file, tmp_path):
    mode = privacy_mode(name)
    label = mode.wire_label(secure=secure)
    log = tmp_path / "wire.jsonl"
    env = {**os.environ, "FEDREC_WIRE_LOG": str(log), "PYTHONPATH": os.pathsep.join(
        [str(CAPTURE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), *_flags(mode, secure), "--rounds", "1",
                    *SMALL, "--out", str(tmp_path / "run"), env=env)
    assert result.returncode in (0, 3), result.stderr[-3000:]  # 3: the gate blocked the release, after its audit
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert not [line for line in lines if "violation" in line], lines
    assert {line["mode"] for line in lines if line["mode"] is not None} == {label}
    assert ANSWERED[label] <= {line["answering"] for line in lines}
    sent = {key for line in lines for key in line["keys"]}
    mode = label
    report = json.loads((tmp_path / "run" / "privacy" / "report.json").read_text())
    assert report["disclosed_outside_accounting"]["mode"] == mode  # the report lists what went out unaccounted
    assert "Disclosed outside the accounting" in (tmp_path / "run" / "privacy" / "report.md").read_text()
    if mode in DP_MODES:  # nothing derived from customer data goes out unaccounted but what the contract lists
        assert f"{wire.METRICS}/{wire.TRAIN_LOSS}" not in sent and f"{LEGACY_METRICS}/{wire.TRAIN_LOSS}" not in sent
        assert "evaluate" not in {line["answering"] for line in lines}  # test metrics only in a secure sum
        last = json.loads((tmp_path / "run" / "metrics.json").read_text())["rounds"][-1]
        assert last["client_metrics"]["num-examples"] > 0 and 0 <= last["client_metrics"]["hr@10"] <= 1
        assert not any(key.endswith(("/hr@10", "/ndcg@10")) for key in sent)
    if mode in (DISTRIBUTED, DISTRIBUTED_CLEAR):  # honest stores: every sum holds the noise its shares claim
        checks = json.loads((tmp_path / "run" / "privacy" / "noise_check.json").read_text())["checks"]
        assert checks and all(check["passed"] for check in checks), checks
    if mode in SECURE_MODES:
        train_keys = {key for line in lines if line["answering"] == "train" for key in line["keys"]}
        assert not any(key.startswith(f"{wire.ARRAYS}/") for key in train_keys)  # updates only masked
        assert f"{wire.ARRAYS}/{wire.ITEM_COUNTS}" not in sent
    if mode in SUMMED_SECURELY:  # the release gate's sums: their layout in clear, their values only masked
        audit_keys = {key for line in lines if line["answering"] == "query.audit" for key in line["keys"]}
        arrays = {key for key in audit_keys if key.startswith(f"{wire.ARRAYS}/")}
        assert arrays and all(key.endswith("/spec") for key in arrays), sorted(arrays)
        assert f"{wire.ARRAYS}/{wire.HISTORY_LENGTHS}" not in sent  # the length histogram too
    else:
        assert any(key.startswith(f"{wire.ARRAYS}/exposure/") and not key.endswith("/spec") for key in sent)


def _reply(content: RecordDict) -> Message:
    request = Message(content=RecordDict(), dst_node_id=1, message_type=MessageType.TRAIN)
    return Message(content=content, reply_to=request)


@pytest.fixture
def server_process(monkeypatch):
    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


def test_a_key_the_contract_does_not_name_never_leaves(server_process):
    reply = _reply(RecordDict({wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: 3, "profile-weight-sum": 1.5})}))
    with pytest.raises(WireContractError, match="names no"):
        classify(reply, answering="train", mode=OFF)


def test_what_a_mode_forbids_is_refused(server_process):
    loss = _reply(RecordDict({wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: 3, wire.TRAIN_LOSS: 2.5})}))
    assert classify(loss, answering="train", mode=OFF)
    with pytest.raises(WireContractError, match="under privacy mode local"):
        classify(loss, answering="train", mode=LOCAL)
    update = _reply(RecordDict({wire.ARRAYS: ArrayRecord({"item_embedding.weight": Array(np.zeros(3))})}))
    with pytest.raises(WireContractError, match="off\\+secagg"):
        classify(update, answering="train", mode=SECAGG)
    counts = _reply(RecordDict({wire.ARRAYS: ArrayRecord({wire.ITEM_COUNTS: Array(np.zeros(3))})}))
    with pytest.raises(WireContractError):
        classify(counts, answering="query.audit_counts", mode=SECAGG)


def test_every_mode_lists_what_it_discloses_outside_the_accounting():
    listed = {item["what"]: item["form"] for item in disclosed_under(DISTRIBUTED)}
    audit = [form for what, form in listed.items() if "audit's sums" in what or "audit sums" in what]
    assert audit == [SUMMED_OVER_STORES]  # named, and only as SecAgg+ sums them
    assert not any("hit rate" in what and form == PER_STORE for what, form in listed.items())
    assert not any("training loss" in what for what in listed)
    clear = {item["what"]: item["form"] for item in disclosed_under(OFF)}
    assert any("audit sums" in what and form == PER_STORE for what, form in clear.items())
    assert len(disclosed_under(OFF)) > len(disclosed_under(DISTRIBUTED))
    assert DISCLOSED == "disclosed"
