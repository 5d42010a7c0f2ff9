"""fedrec ClientApp: unpack the server's message, train or evaluate locally, reply.

Everything a client needs to know about the run arrives in the message's config record;
where its data lives comes from its node config (simulation: partition-id; a deployed
SuperNode: data-path, optional state-dir and client-name).
"""

from __future__ import annotations

import json

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedrec.config import AuditConfig
from fedrec.federation import wire
from fedrec.federation.client import (
    audit_client, audit_counts, evaluate_client, locate_site, release_popularity, train_client,
)
from fedrec.privacy.budget import BudgetExhausted
from fedrec.privacy.ledger import ClientLedger

app = ClientApp()


def _site_and_config(msg: Message, context: Context):
    config = msg.content[wire.CONFIG]
    train, federation = wire.config_from_wire(config)
    state_dir = config.get(wire.STATE_DIR)
    site = locate_site(context.node_config, train, federation, state_dir)
    round_number = int(config.get(wire.SERVER_ROUND, 0)) + int(config.get(wire.ROUND_OFFSET, 0))
    return site, train, federation, round_number


@app.train()
def train(msg: Message, context: Context) -> Message:
    site, train_config, federation, round_number = _site_and_config(msg, context)
    global_state = msg.content[wire.ARRAYS].to_torch_state_dict()
    control = msg.content[wire.CONTROL].to_torch_state_dict() if wire.CONTROL in msg.content else None
    try:
        update = train_client(site, train_config, federation, global_state, round_number, control)
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


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The DP popularity prior: this client's noisy item counts (accounted in its ledger)."""
    site, train_config, federation, _ = _site_and_config(msg, context)
    counts, ledger = release_popularity(site, train_config, federation, msg.content[wire.ARRAYS].to_torch_state_dict())
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
    """The federated audit's first query: history-length histogram (and item counts without DP)."""
    site, train_config, _, _ = _site_and_config(msg, context)
    arrays = ArrayRecord({name: Array(values) for name, values in audit_counts(site, train_config).items()})
    reply = RecordDict({wire.ARRAYS: arrays, wire.METRICS: MetricRecord({wire.NUM_USERS: site.data.n_users})})
    return Message(content=reply, reply_to=msg)


@app.query(wire.AUDIT)
def query_audit(msg: Message, context: Context) -> Message:
    """The federated audit's second query: this client's audit sums of the sent model."""
    site, train_config, _, _ = _site_and_config(msg, context)
    settings = msg.content[wire.AUDIT]
    config = AuditConfig(top_k=int(settings[wire.AUDIT_TOP_K]), n_boot=int(settings[wire.AUDIT_N_BOOT]),
                         seed=int(settings[wire.AUDIT_SEED]))
    popularity = msg.content[wire.POPULARITY][wire.POPULARITY].numpy() if wire.POPULARITY in msg.content else None
    sums, groupings = audit_client(site, train_config, msg.content[wire.ARRAYS].to_torch_state_dict(), config,
                                   threshold=int(settings[wire.AUDIT_THRESHOLD]), popularity=popularity)
    reply = RecordDict({
        wire.ARRAYS: ArrayRecord({name: Array(values) for name, values in sums.items()}),
        wire.METRICS: MetricRecord({wire.NUM_USERS: site.data.n_users}),
        wire.AUDIT: ConfigRecord({wire.AUDIT_CLIENT: site.name, wire.AUDIT_GROUPINGS: groupings}),
    })
    return Message(content=reply, reply_to=msg)
