"""How many bytes a run's messages carry, counted where the server sends and receives them.

The count is the payload: array bytes, byte and text values of config records, 8 bytes per
number. Protobuf framing, TLS and gRPC headers come on top (a few percent for model-sized
messages). It is what makes secure aggregation's cost visible: SecAgg+ sends each store's
update as 64-bit masked integers where the plain path sends 32-bit floats, plus its keys.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord


def payload_bytes(message: Message) -> int:
    if message.has_error() or not message.has_content():
        return 0
    total = 0
    for record in message.content.values():
        if isinstance(record, ArrayRecord):
            total += sum(len(array.data) for array in record.values())
        elif isinstance(record, (ConfigRecord, MetricRecord)):
            total += sum(_value_bytes(value) for value in record.values())
    return total


def _value_bytes(value: Any) -> int:
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, list):
        return sum(_value_bytes(item) for item in value)
    return 8


# Flower's in-memory grid (the simulation engine's) sleeps its ``pull_interval`` (0.1 s by
# default) between looks for replies. A SecAgg+ round is four request-reply stages whose
# replies take ~10 ms at the setup and unmask stages, so each stage waited out the interval:
# about 0.2 s of the main job's ~1.7 s round. A look costs microseconds.
SIMULATION_PULL_INTERVAL = 0.01
# Flower's deployment grid (HttpGrid, `flwr run` against a SuperLink) sleeps a fixed 3 s between
# looks, so each stage whose replies are not back at the first look costs at least 3 s (a
# SecAgg+ round has four stages). In the TLS deployment test a round took 9.5 s, now 8.0 s. fedrec asks with Flower's
# own push_messages / pull_messages, as Flower's loop does, every DEPLOYMENT_PULL_INTERVAL
# (one small request to the SuperLink each time).
DEPLOYMENT_PULL_INTERVAL = 0.2


class MeteredGrid:
    """A Flower Grid that counts the payload of what goes through ``send_and_receive`` (all
    that fedrec's strategies and Flower's SecAgg+ workflow use); everything else is the
    wrapped grid's. A simulation's in-memory grid looks for replies every
    ``SIMULATION_PULL_INTERVAL``; on any other grid (a deployment's) fedrec looks every
    ``DEPLOYMENT_PULL_INTERVAL``."""

    def __init__(self, grid: Any) -> None:
        self._in_memory = isinstance(getattr(grid, "pull_interval", None), float)  # Flower's InMemoryGrid (simulation)
        if self._in_memory:
            grid.pull_interval = min(grid.pull_interval, SIMULATION_PULL_INTERVAL)
        self._grid = grid
        self.bytes_sent = 0
        self.bytes_received = 0

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        self.bytes_sent += sum(payload_bytes(message) for message in messages)
        if self._in_memory:  # its own loop, at the interval set above
            replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        else:
            replies = self._pushed_and_pulled(messages, timeout)
        self.bytes_received += sum(payload_bytes(reply) for reply in replies)
        return replies

    def _pushed_and_pulled(self, messages: list[Message], timeout: float | None) -> list[Message]:
        """Flower's ``Grid.send_and_receive`` (push, then pull until every reply is in or the
        timeout passes), looking every DEPLOYMENT_PULL_INTERVAL instead of every 3 s."""
        waiting = set(self._grid.push_messages(messages))
        end = time.time() + (timeout if timeout is not None else 0.0)
        replies: list[Message] = []
        while timeout is None or time.time() < end:
            pulled = list(self._grid.pull_messages(waiting))
            replies.extend(pulled)
            waiting.difference_update(reply.metadata.reply_to_message_id for reply in pulled)
            if not waiting:
                break
            time.sleep(DEPLOYMENT_PULL_INTERVAL)
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)
