"""fedrec ClientApp: unpack the server's message, train or evaluate locally, reply.

Everything a client needs to know about the run arrives in the message's config record;
where its data lives comes from its node config (simulation: partition-id; a deployed
SuperNode: data-path, optional state-dir and client-name).
"""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedrec.federation import wire
from fedrec.federation.client import evaluate_client, locate_site, train_client

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
    shared, metrics = train_client(site, train_config, federation, global_state, round_number)
    reply = RecordDict({wire.ARRAYS: ArrayRecord(shared), wire.METRICS: MetricRecord(metrics)})
    return Message(content=reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    site, train_config, _, _ = _site_and_config(msg, context)
    metrics = evaluate_client(site, train_config, msg.content[wire.ARRAYS].to_torch_state_dict())
    return Message(content=RecordDict({wire.METRICS: MetricRecord(metrics)}), reply_to=msg)
