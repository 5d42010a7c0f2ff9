"""Aggregation rules, on arrays small enough to check by hand."""

import numpy as np
import pytest
import torch

from conftest import resolved
from fedrec.config import FederationConfig, TrainConfig
from fedrec.federation.strategy import build_strategy, fill_untouched_rows


def federation(**fields) -> FederationConfig:
    """A resolved federation of plain-SGD stores (the recipe fills what is not given)."""
    return resolved(TrainConfig(model="lstm", optimizer="sgd"), FederationConfig(**fields))[1]


def weighted_mean(arrays, weights):
    return sum(w * a for w, a in zip(weights, arrays)) / sum(weights)


def test_each_item_row_is_averaged_over_the_clients_that_changed_it():
    global_rows = np.zeros((4, 2), dtype=np.float32)
    a = global_rows.copy()
    a[1] = [1.0, 1.0]  # only store A saw item 1
    a[3] = [2.0, 2.0]
    b = global_rows.copy()
    b[2] = [5.0, 5.0]  # only store B saw item 2
    b[3] = [6.0, 6.0]
    weights = [1.0, 3.0]

    filled = fill_untouched_rows(global_rows, [a, b], weights)
    result = weighted_mean(filled, weights)

    np.testing.assert_allclose(result[0], [0.0, 0.0])  # nobody: stays global
    np.testing.assert_allclose(result[1], [1.0, 1.0])  # A alone: not diluted by B's weight
    np.testing.assert_allclose(result[2], [5.0, 5.0])
    np.testing.assert_allclose(result[3], [(2 + 18) / 4] * 2)  # both: the usual weighted mean


def test_plain_weighted_mean_would_dilute_a_row_one_client_trained():
    global_rows = np.zeros((2, 1))
    a = np.array([[4.0], [0.0]])
    b = np.zeros((2, 1))
    assert weighted_mean([a, b], [1.0, 3.0])[0, 0] == 1.0  # FedAvg: a quarter of A's update
    assert weighted_mean(fill_untouched_rows(global_rows, [a, b], [1.0, 3.0]), [1.0, 3.0])[0, 0] == 4.0


def test_strategy_choice_and_central_dp_wrapping():
    import pytest
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAdam, FedAvgM

    from fedrec.config import FederationConfig
    from fedrec.errors import ConfigError
    from fedrec.federation import wire
    from fedrec.federation.ledger_collection import LedgerCollection
    from fedrec.federation.strategy import TouchedRowsAveraging, build_strategy

    adam = build_strategy(federation(strategy="fedadam", server_lr=0.03, server_momentum=0.9))
    assert isinstance(adam.inner, LedgerCollection)  # every strategy keeps the stores' ledgers, under the failure floor
    assert isinstance(adam.inner.inner, FedAdam) and adam.inner.inner.eta == 0.03 and adam.inner.inner.beta_1 == 0.9
    touched = build_strategy(federation(), row_keys=("item_embedding.weight",))
    assert isinstance(touched.inner.inner, TouchedRowsAveraging) and isinstance(touched.inner.inner.inner, FedAvgM)
    private = build_strategy(federation(strategy="fedavg", min_available=100, fraction=0.1),
                             row_keys=("item_embedding.weight",), server_noise=(1.0, 0.5))
    # Server-side DP replaces touched-row averaging and weighs every client the same.
    assert isinstance(private.inner.inner, DifferentialPrivacyServerSideFixedClipping)
    assert private.inner.inner.num_sampled_clients == 10
    assert private.inner.inner.strategy.weighted_by_key == wire.UNIT_WEIGHT
    with pytest.raises(ConfigError, match="client_lr_decay"):
        FederationConfig(client_lr_decay=1.5)


def test_client_learning_rate_decays_by_round():
    from fedrec.config import TrainConfig
    from fedrec.federation.client import round_config

    train = TrainConfig(lr=0.01)
    decaying = federation(client_lr_decay=0.5)
    assert round_config(train, decaying, 1).lr == 0.01
    assert round_config(train, decaying, 3).lr == 0.0025
    assert round_config(train, federation(client_lr_decay=1.0), 7).lr == 0.01


@pytest.mark.parametrize("name", ["fedavgm", "fedadam"])
def test_server_optimizer_state_round_trips_through_a_checkpoint(name):
    from fedrec.federation.strategy import _optimizer_strategy, restore_server_optimizer_state, server_optimizer_state

    config = federation(strategy=name, server_momentum=0.9)
    before = build_strategy(config, row_keys=("item_embedding.weight",))
    inner = _optimizer_strategy(before)
    arrays = {"item_embedding.weight": np.arange(6.0).reshape(3, 2), "output.bias": np.ones(3)}
    if name == "fedadam":
        inner.m_t = {k: v * 0.1 for k, v in arrays.items()}
        inner.v_t = {k: v * 0.01 for k, v in arrays.items()}
    else:
        inner.momentum_vector = [v * 0.1 for v in arrays.values()]
    saved = server_optimizer_state(before)
    after = build_strategy(config, row_keys=("item_embedding.weight",))
    restore_server_optimizer_state(after, saved)
    assert server_optimizer_state(after).keys() == saved.keys()
    assert all(torch.equal(server_optimizer_state(after)[k], saved[k]) for k in saved)
    assert saved  # not trivially empty


def test_the_aggregate_does_not_depend_on_which_client_replied_first():
    """Float sums in arrival order differ in their last bits; a resumed run must end where an
    unbroken one does however busy the machine was."""
    from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict

    from fedrec.federation import wire

    rng = np.random.default_rng(0)
    replies = []
    for client in range(4):
        arrays = {"w": rng.normal(size=(64, 8)).astype(np.float32) * 10 ** client}
        metrics = {wire.NUM_EXAMPLES: 10 + 3 * client, wire.UNIT_WEIGHT: 1.0, wire.TRAIN_LOSS: float(client), wire.NUM_USERS: 5}
        content = RecordDict({wire.ARRAYS: ArrayRecord({k: torch.from_numpy(v) for k, v in arrays.items()}),
                              wire.METRICS: MetricRecord(metrics)})
        metadata = Metadata(run_id=1, message_id=f"m{client}", src_node_id=client + 1, dst_node_id=0, reply_to_message_id="",
                            group_id="1", created_at=0.0, ttl=60.0, message_type="train")
        replies.append(Message(content=content, metadata=metadata))
    strategy = build_strategy(federation(strategy="fedavg"))

    forward, _ = strategy.aggregate_train(1, replies)
    backward, _ = strategy.aggregate_train(1, replies[::-1])

    assert np.array_equal(forward["w"].numpy(), backward["w"].numpy())


def test_integer_tables_of_the_state_come_out_of_aggregation_as_the_server_sent_them():
    """The attribute table (item -> bucket ids) is a lookup: averaged over unequal weights and
    moved by server momentum it drifted into ids past the table (an IndexError at round 49)."""
    from flwr.app import Array, ArrayRecord, Message, Metadata, MetricRecord, RecordDict

    from fedrec.federation import wire

    table = np.array([[0, 0], [1024, 7], [3, 513]], dtype=np.int64)
    sent = ArrayRecord({"item_attributes": Array(table), "w": Array(np.zeros(4, np.float32))})
    strategy = build_strategy(federation(strategy="fedavg"))

    strategy.remember_sent(sent)  # what configure_train does with the arrays it sends
    replies = []
    for client, weight in enumerate((7, 3, 11)):
        drifted = table + (5 if client == 2 else 0)  # a table no reply should change; averaged: table + 2.6
        content = RecordDict({wire.ARRAYS: ArrayRecord({"item_attributes": Array(drifted),
                                                        "w": Array(np.full(4, client, np.float32))}),
                              wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: weight, wire.UNIT_WEIGHT: 1.0,
                                                          wire.TRAIN_LOSS: 0.0, wire.NUM_USERS: 5})})
        metadata = Metadata(run_id=1, message_id=f"m{client}", src_node_id=client + 1, dst_node_id=0,
                            reply_to_message_id="", group_id="1", created_at=0.0, ttl=60.0, message_type="train")
        replies.append(Message(content=content, metadata=metadata))

    aggregated, _ = strategy.aggregate_train(1, replies)

    assert np.array_equal(aggregated["item_attributes"].numpy(), table)
    assert not np.array_equal(aggregated["w"].numpy(), np.zeros(4))  # the weights were averaged


def test_fedadam_steps_the_model_in_the_dtypes_it_was_sent():
    """Flower's FedAdam returned float64: the model crossed the wire at twice its size and a
    client's float32 weights never equalled the global ones (every row looked trained)."""
    from flwr.app import Array, ArrayRecord, Message, Metadata, MetricRecord, RecordDict

    from fedrec.federation import wire
    from fedrec.federation.strategy import _optimizer_strategy

    strategy = build_strategy(federation(strategy="fedadam", server_lr=0.01, server_momentum=0.9))
    sent = ArrayRecord({"w": Array(np.zeros(4, np.float32))})
    _optimizer_strategy(strategy).current_arrays = {k: v.numpy() for k, v in sent.items()}  # as configure_train keeps it
    strategy.remember_sent(sent)
    content = RecordDict({wire.ARRAYS: ArrayRecord({"w": Array(np.full(4, 0.5, np.float32))}),
                          wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: 3, wire.UNIT_WEIGHT: 1.0, wire.TRAIN_LOSS: 0.0,
                                                      wire.NUM_USERS: 1})})
    metadata = Metadata(run_id=1, message_id="m0", src_node_id=1, dst_node_id=0, reply_to_message_id="", group_id="1",
                        created_at=0.0, ttl=60.0, message_type="train")
    aggregated, _ = strategy.aggregate_train(1, [Message(content=content, metadata=metadata)])
    assert aggregated["w"].numpy().dtype == np.float32
    assert np.all(aggregated["w"].numpy() > 0)  # it stepped
