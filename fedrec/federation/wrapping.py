"""The base of fedrec's strategy wrappers: pass everything through to the wrapped strategy,
so a wrapper overrides only the step it changes (as Flower's own DP wrappers do)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedrec.federation import wire


class WrappingStrategy(Strategy):
    def __init__(self, inner: Strategy) -> None:
        self.inner = inner

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.inner.aggregate_train(server_round, replies)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()


class ClientStatisticsExchange(WrappingStrategy):
    """A wrapper whose server-side state travels with the model in every train message
    (under ``wire.CONTROL``) and moves by a statistic the clients send back under the same
    key. The statistic is taken out of each reply before the wrapped strategy averages the
    model: Flower's averaging expects one ArrayRecord per reply.

    ``state`` is what is sent and checkpointed (under ``checkpoint_prefix``); subclasses
    say how the example-weighted replies move it (``absorb``).
    """

    checkpoint_prefix = "exchange"

    def __init__(self, inner: Strategy) -> None:
        super().__init__(inner)
        self.state: dict[str, np.ndarray] = {}
        self.connected = 0

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.connected = len(list(grid.get_node_ids()))
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        record = ArrayRecord({k: Array(v) for k, v in self.state.items()})  # built once, read by every message
        for message in messages:
            message.content[wire.CONTROL] = record
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        statistics, weights = [], []
        for reply in replies:
            if reply.has_error() or wire.CONTROL not in reply.content:
                continue
            statistics.append({k: v.numpy() for k, v in reply.content[wire.CONTROL].items()})
            weights.append(float(reply.content[wire.METRICS][wire.NUM_EXAMPLES]))
            del reply.content[wire.CONTROL]
        if statistics and sum(weights) > 0:
            self.absorb(statistics, weights)
        return self.inner.aggregate_train(server_round, replies)

    def absorb(self, statistics: list[dict[str, np.ndarray]], weights: list[float]) -> None:
        raise NotImplementedError


def weighted_mean(statistics: list[dict[str, np.ndarray]], weights: list[float], key: str) -> np.ndarray:
    return sum(w * s[key] for w, s in zip(weights, statistics)) / sum(weights)
