"""fedrec ClientApp: unpack the server's message, train or evaluate locally, reply.

Everything a client needs to know about the run arrives in the message's config record;
where its data lives comes from its node config (simulation: partition-id; a deployed
SuperNode: data-path, optional state-dir and client-name). Under --secagg, train messages
pass Flower's secaggplus_mod and arrive in the legacy FitIns layout, which this app also reads.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.logger import FLOWER_LOGGER, set_logger_propagation
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE, Key, Stage
from flwr.compat.common import recorddict_compat as compat

from fedrec import logs
from fedrec.audit.reply import flatten, layout, pack
from fedrec.config import AuditConfig, FederationConfig, TrainConfig
from fedrec.data import leave_one_out
from fedrec.errors import ConfigError
from fedrec.federation import secagg_masks, wire
from fedrec.federation.client import (
    ClientSite, audit_client, audit_counts, distributed_round, evaluate_client, locate_site, own_store_label,
    private_customers, release_popularity, train_client, training_examples,
)
from fedrec.federation.device_shards import shard_devices, train_shard
from fedrec.federation.secure_aggregation import clipped_coordinates
from fedrec.federation.secure_evaluation import evaluation_vector
from fedrec.federation.store_floor import SIMULATED_FLOOR, StoreFloor
from fedrec.federation.wire_contract import SUMMED_SECURELY, mode_of, wire_contract_mod
from fedrec.privacy.budget import BudgetExhausted
from fedrec.privacy.distributed_dp import DistributedPlan
from fedrec.privacy.ledger import ClientLedger
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.modes.base import NOISE_SHARE_ROUND, PLAIN_ROUND
from fedrec.privacy.noise_check import CHECK_KEY

log = logging.getLogger("fedrec.client")
secagg_masks.install()  # SecAgg+ masks from the whole seed, as the server's (fedrec.federation.secagg_masks)
# Opacus' import-time logging.basicConfig gives the root logger a handler, where Flower's lines would
# come out a second time, DEBUG included (secaggplus_mod logs every stage). A Ray worker of fedrec
# simulate sends them through fedrec's handlers instead (fedrec.federation.console.WorkerLogs).
if not logs.formats_process():
    set_logger_propagation(FLOWER_LOGGER, False)
LEGACY_FIT_PARAMETERS = "fitins.parameters"  # the array record of Flower's legacy FitIns layout (--secagg)


def secure_aggregation_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's secaggplus_mod for the train messages of a --secagg run (they carry its
    protocol record), every other message straight through. A setup whose threshold would let
    a sum below the store's floor be unmasked is refused before any key is made."""
    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        protocol = msg.content.config_records[RECORD_KEY_CONFIGS]
        if protocol.get(Key.STAGE) == Stage.SETUP:
            store_floor(context).check_unmasking(int(protocol[Key.THRESHOLD]), int(protocol[Key.SAMPLE_NUMBER]))
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


# The wire contract checks each reply last, after SecAgg+ has masked what it masks.
app = ClientApp(mods=[wire_contract_mod, secure_aggregation_when_asked])


def store_floor(context: Context) -> StoreFloor:
    """This store's floor: its node config, over the simulated stores' settings (SIMULATED_FLOOR)."""
    simulated = os.environ.get(SIMULATED_FLOOR)
    default = StoreFloor(**json.loads(simulated)) if simulated else None
    return StoreFloor.from_node_config(context.node_config, default)


def _secagg_threshold(context: Context) -> int | None:
    """The threshold this store's secaggplus_mod set up this round with (None: no SecAgg+)."""
    state = context.state.config_records.get(RECORD_KEY_STATE)
    return int(state["threshold"]) if state is not None and "threshold" in state else None


def _site_and_config(msg: Message, context: Context):
    return _site_and_config_from(msg.content[wire.CONFIG], context)


def _train_round(site: ClientSite, train_config: TrainConfig, federation: FederationConfig, config: Mapping[str, Any],
                 global_state: dict[str, torch.Tensor], round_number: int, context: Context, *,
                 secure: bool = False, control: dict[str, torch.Tensor] | None = None):
    """This store's update, as its privacy mode trains (a distributed DP share, DP-SGD or plain
    local training); refused (FloorRefused) when the round asks for less than the store's floor
    (``secure``: the update goes into a SecAgg+ sum, whose threshold this store was given)."""
    run = str(config.get(wire.RUN_ID, ""))
    floor = store_floor(context)
    kind = privacy_mode(train_config.dp).store_round
    if kind == NOISE_SHARE_ROUND:
        plan = DistributedPlan.from_wire(config)
        if plan is None:
            raise ConfigError(f"--dp {train_config.dp}: the round carries no DP-SGD plan; this store sends no share.")
        floor.check_plan(plan, threshold=_secagg_threshold(context) if secure else None)
        return distributed_round(site, train_config, global_state, round_number, plan, run)
    if kind == PLAIN_ROUND:
        floor.check_noise(0.0)  # a store that insists on noise takes no part in a round without
    return train_client(site, train_config, federation, global_state, round_number, control, run=run,
                        least_noise=floor.min_noise_multiplier)


def _site_and_config_from(config: Mapping[str, Any], context: Context):
    train, federation = wire.config_from_wire(config)
    state_dir = config.get(wire.STATE_DIR)
    site = locate_site(context.node_config, train, federation, state_dir)
    round_number = int(config.get(wire.SERVER_ROUND, 0)) + int(config.get(wire.ROUND_OFFSET, 0))
    return site, train, federation, round_number


@app.train()
def train(msg: Message, context: Context) -> Message:
    if LEGACY_FIT_PARAMETERS in msg.content.array_records:
        return _train_for_secure_aggregation(msg, context)
    if (devices := shard_devices(msg.content[wire.CONFIG])) is not None:
        return _train_shard(msg, context, devices)
    site, train_config, federation, round_number = _site_and_config(msg, context)
    global_state = msg.content[wire.ARRAYS].to_torch_state_dict()
    control = msg.content[wire.CONTROL].to_torch_state_dict() if wire.CONTROL in msg.content else None
    try:
        update = _train_round(site, train_config, federation, msg.content[wire.CONFIG], global_state, round_number, context,
                              control=control)
    except BudgetExhausted as refusal:  # a normal reply: the server logs it and goes on
        privacy = _privacy_record(site.name, refusal.ledger, refused=str(refusal))
        reply = RecordDict({wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: 0}), wire.PRIVACY: privacy})
        return Message(content=reply, reply_to=msg)
    reply = RecordDict({wire.ARRAYS: ArrayRecord(update.shared), wire.METRICS: MetricRecord(update.metrics)})
    if update.ledger is not None:
        reply[wire.PRIVACY] = _privacy_record(site.name, update.ledger)
    if update.control_change is not None:
        reply[wire.CONTROL] = ArrayRecord(update.control_change)
    return Message(content=reply, reply_to=msg)


def _train_shard(msg: Message, context: Context, devices: list[int]) -> Message:
    """A simulated shard of devices (--device-shards): its sampled devices' models, merged."""
    config = msg.content[wire.CONFIG]
    train_config, federation = wire.config_from_wire(config)
    round_number = int(config.get(wire.SERVER_ROUND, 0)) + int(config.get(wire.ROUND_OFFSET, 0))
    control = msg.content[wire.CONTROL].to_torch_state_dict() if wire.CONTROL in msg.content else None
    arrays, metrics, statistics = train_shard(
        context.node_config, train_config, federation, msg.content[wire.ARRAYS].to_torch_state_dict(), round_number,
        devices, state_dir=config.get(wire.STATE_DIR), run=str(config.get(wire.RUN_ID, "")), global_control=control)
    reply = RecordDict({wire.ARRAYS: ArrayRecord({k: Array(v) for k, v in arrays.items()}), wire.METRICS: MetricRecord(metrics)})
    if statistics is not None:
        reply[wire.CONTROL] = ArrayRecord({k: Array(v) for k, v in statistics.items()})
    return Message(content=reply, reply_to=msg)


def _train_for_secure_aggregation(msg: Message, context: Context) -> Message:
    """A --secagg round: the global model arrives as legacy FitIns; the reply is a legacy
    FitRes holding this store's delta (secaggplus_mod weights, clips, quantizes and masks
    it), its metrics, the coordinates the protocol will clip, and under DP its ledger."""
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    site, train_config, federation, round_number = _site_and_config_from(fitins.config, context)
    if wire.SECURE_SUM in fitins.config:
        return _secure_sum_reply(msg, context, site, train_config, federation, fitins.config, fitins.parameters)
    named = _named_arrays(fitins.config, fitins.parameters)
    keys, received = list(named), list(named.values())
    # CHECK_KEY: the check coordinates' place (distributed DP), not the model's
    global_state = _torch_state({key: value for key, value in named.items() if key != CHECK_KEY})
    try:
        update = _train_round(site, train_config, federation, fitins.config, global_state, round_number, context,
                              secure=True)
    except BudgetExhausted as refusal:  # weight 0: this store adds nothing to the sum
        deltas = [np.zeros_like(value, dtype=np.float32) for value in received]
        metrics = {wire.NUM_EXAMPLES: 0, **_legacy_privacy(site.name, refusal.ledger, refused=str(refusal))}
        return _legacy_fit_reply(msg, deltas, metrics)
    plan = DistributedPlan.from_wire(fitins.config)
    if plan is not None:  # the share itself, weight 1 (non-trained arrays: 0)
        deltas = [update.shared[key].numpy().astype(np.float32) if key in update.shared else np.zeros_like(value, dtype=np.float32)
                  for key, value in zip(keys, received)]
    else:
        deltas = [update.shared[key].numpy().astype(np.float32) - value.astype(np.float32) for key, value in zip(keys, received)]
    max_weight = float(fitins.config[wire.SECAGG_ROUND_MAX_WEIGHT])
    examples = int(update.metrics[wire.NUM_EXAMPLES])
    clip = federation.secagg_clip if plan is None else plan.share_clip
    clipped = clipped_coordinates(deltas, examples, max_weight, clip)
    if clipped:
        log.warning("%s round %d: %d coordinates of the update exceed the SecAgg+ clip %g after weighting; SecAgg+ "
                    "clips them", site.name, round_number, clipped, clip)
    metrics = {**update.metrics, wire.SECAGG_CLIPPED: clipped}
    if update.ledger is not None:
        metrics.update(_legacy_privacy(site.name, update.ledger))
    return _legacy_fit_reply(msg, deltas, metrics)


def _secure_sum_reply(msg: Message, context: Context, site: ClientSite, train_config: TrainConfig,
                      federation: FederationConfig, config: Mapping[str, Any], parameters) -> Message:
    """A secure sum's answer: the vector the server asked for, at weight 1, entries above
    the protocol's clip counted (the server then knows the sum is a lower bound there)."""
    action = str(config[wire.SECURE_SUM])
    metrics: dict[str, Any] = {wire.NUM_EXAMPLES: 1}
    if action in (wire.ITEM_COUNTS, wire.HISTORY_LENGTHS):  # the release gate's counts under --secagg or DP
        vector = audit_counts(site, train_config, secure=True)[action].astype(np.float64)
    elif action == wire.PRIOR_COUNTS:  # --dp distributed: this store's noise share of the popularity prior
        plan = DistributedPlan.from_wire(config)
        store_floor(context).check_plan(plan, threshold=_secagg_threshold(context))
        vector, ledger = release_popularity(site, train_config, federation, {}, run=str(config.get(wire.RUN_ID, "")),
                                            plan=plan)
        metrics.update(_legacy_privacy(site.name, ledger))
    elif action == wire.EVALUATION:  # federated evaluation under client DP: the model came as the parameters
        vector = evaluation_vector(evaluate_client(site, train_config, _torch_state(_named_arrays(config, parameters))))
    elif action == wire.AUDIT_SUMS:  # the release gate's sums: the audited model (and popularity) came as parameters
        arrays = _named_arrays(config, parameters)
        popularity = arrays.pop(wire.POPULARITY, None)
        settings = json.loads(str(config[wire.AUDIT_SETTINGS]))
        sums, _, _ = _audit_sums(site, train_config, _torch_state(arrays), settings, popularity)
        vector = flatten(sums, settings[wire.AUDIT_KEYS])
    else:
        raise ValueError(f"no secure sum named {action!r}; this store knows {wire.ITEM_COUNTS!r}, "
                         f"{wire.HISTORY_LENGTHS!r}, {wire.PRIOR_COUNTS!r}, {wire.EVALUATION!r} and {wire.AUDIT_SUMS!r}")
    clipped = int(np.count_nonzero(np.abs(vector) > float(config[wire.SECURE_SUM_CLIP])))
    return _legacy_fit_reply(msg, [vector], {**metrics, wire.SECAGG_CLIPPED: clipped})


def _named_arrays(config: Mapping[str, Any], parameters) -> dict[str, np.ndarray]:
    """A legacy FitIns' parameters by the names SECAGG_KEYS gives them, in their order."""
    keys = str(config[wire.SECAGG_KEYS]).split(wire.SECAGG_KEY_SEPARATOR)
    return dict(zip(keys, parameters_to_ndarrays(parameters)))


def _torch_state(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.array(value)) for key, value in arrays.items()}


def _legacy_fit_reply(msg: Message, deltas: list[np.ndarray], metrics: dict[str, Any]) -> Message:
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(deltas), int(metrics[wire.NUM_EXAMPLES]), metrics)
    return Message(content=compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


def _legacy_privacy(client: str, ledger: ClientLedger, refused: str | None = None) -> dict[str, str]:
    """The PRIVACY record's entries as flat metrics (the legacy FitRes has no other record)."""
    return {wire.LEGACY_PRIVACY_PREFIX + key: value
            for key, value in _privacy_record(client, ledger, refused).items()}


@app.query(wire.TRAINING_EXAMPLES)
def query_training_examples(msg: Message, context: Context) -> Message:
    """--secagg, before a store's first round: its averaging weight, so that the protocol's
    max_weight is the largest store's (every train reply states it in clear too)."""
    site, train_config, _, _ = _site_and_config(msg, context)
    examples = training_examples(leave_one_out(site.data).train, train_config.model)
    return Message(content=RecordDict({wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: examples})}), reply_to=msg)


@app.query(wire.PRIVATE_CUSTOMERS)
def query_private_customers(msg: Message, context: Context) -> Message:
    """--dp distributed, before round 1: how many customers this store's DP training samples from."""
    site, train_config, _, _ = _site_and_config(msg, context)
    customers = private_customers(site, train_config)
    return Message(content=RecordDict({wire.METRICS: MetricRecord({wire.NUM_USERS: customers})}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The DP popularity prior: this client's noisy item counts (accounted in its ledger)."""
    site, train_config, federation, _ = _site_and_config(msg, context)
    config = msg.content[wire.CONFIG]
    plan = DistributedPlan.from_wire(config)
    if plan is not None:  # its share in clear: a sum of one store
        store_floor(context).check_plan(plan, threshold=None)
    counts, ledger = release_popularity(site, train_config, federation, msg.content[wire.ARRAYS].to_torch_state_dict(),
                                        run=str(config.get(wire.RUN_ID, "")), plan=plan)
    reply = RecordDict({
        wire.ARRAYS: ArrayRecord({wire.PRIOR_COUNTS: Array(counts)}),
        wire.METRICS: MetricRecord({wire.NUM_USERS: site.data.n_users}),
        wire.PRIVACY: _privacy_record(site.name, ledger),
    })
    return Message(content=reply, reply_to=msg)


def _privacy_record(client: str, ledger: ClientLedger, refused: str | None = None) -> ConfigRecord:
    record = {wire.PRIVACY_CLIENT: client, wire.PRIVACY_LEDGER: json.dumps(ledger.to_dict())}
    if refused is not None:
        record[wire.PRIVACY_REFUSED] = refused
    return ConfigRecord(record)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    site, train_config, _, _ = _site_and_config(msg, context)
    metrics = evaluate_client(site, train_config, msg.content[wire.ARRAYS].to_torch_state_dict())
    return Message(content=RecordDict({wire.METRICS: MetricRecord(metrics)}), reply_to=msg)


@app.query(wire.AUDIT_COUNTS)
def query_audit_counts(msg: Message, context: Context) -> Message:
    """The federated audit's first query: history-length histogram (and item counts without
    DP); under --secagg or DP only the store's name: its counts go into secure sums."""
    site, train_config, federation, _ = _site_and_config(msg, context)
    secure = mode_of(msg.content[wire.CONFIG]) in SUMMED_SECURELY
    counts = {} if secure else audit_counts(site, train_config)
    reply = RecordDict({
        wire.ARRAYS: ArrayRecord({name: Array(values) for name, values in counts.items()}),
        wire.METRICS: MetricRecord({wire.NUM_USERS: site.data.n_users}),
        wire.AUDIT: ConfigRecord({wire.AUDIT_CLIENT: site.name, **own_store_label(site, federation)}),
    })
    return Message(content=reply, reply_to=msg)


@app.query(wire.AUDIT)
def query_audit(msg: Message, context: Context) -> Message:
    """The federated audit's second query: this client's audit sums of the sent model; with
    the server's fixed vocabularies (--secagg or DP), only their layout: the values follow
    in a secure sum (``_secure_sum_reply``)."""
    site, train_config, _, _ = _site_and_config(msg, context)
    popularity = msg.content[wire.POPULARITY][wire.POPULARITY].numpy() if wire.POPULARITY in msg.content else None
    return Message(content=audit_reply(site, train_config, msg.content[wire.ARRAYS].to_torch_state_dict(),
                                       dict(msg.content[wire.AUDIT]), popularity), reply_to=msg)


def audit_reply(site: ClientSite, train_config: TrainConfig, state: dict[str, torch.Tensor], settings: Mapping[str, Any],
                popularity: np.ndarray | None) -> RecordDict:
    """The audit query's answer: the packed sums, or with fixed vocabularies only their layout."""
    sums, groupings, left_out = _audit_sums(site, train_config, state, settings, popularity)
    packed = pack(*sums.values())
    audit = {wire.AUDIT_CLIENT: site.name, wire.AUDIT_GROUPINGS: groupings}
    if wire.AUDIT_VOCABULARIES in settings:
        packed, audit[wire.AUDIT_LEFT_OUT] = layout(packed), left_out
    return RecordDict({
        wire.ARRAYS: ArrayRecord({name: Array(values) for name, values in packed.items()}),
        wire.METRICS: MetricRecord({wire.NUM_USERS: site.data.n_users}),
        wire.AUDIT: ConfigRecord(audit),
    })


def _audit_sums(site: ClientSite, train_config: TrainConfig, state: dict[str, torch.Tensor], settings: Mapping[str, Any],
                popularity: np.ndarray | None):
    """``audit_client`` with the settings the server sent (an AUDIT record, or its JSON)."""
    config = AuditConfig(top_k=int(settings[wire.AUDIT_TOP_K]), n_boot=int(settings[wire.AUDIT_N_BOOT]),
                         seed=int(settings[wire.AUDIT_SEED]))
    vocabularies = json.loads(str(settings[wire.AUDIT_VOCABULARIES])) if wire.AUDIT_VOCABULARIES in settings else None
    return audit_client(site, train_config, state, config, threshold=int(settings[wire.AUDIT_THRESHOLD]),
                        popularity=popularity, vocabularies=vocabularies)
