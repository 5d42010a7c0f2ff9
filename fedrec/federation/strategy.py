"""FedAvg that survives failing clients, as long as enough replies arrive."""

from __future__ import annotations

import logging
from typing import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from fedrec.errors import ConfigError

log = logging.getLogger("fedrec.server")


class TolerantFedAvg(FedAvg):
    """FedAvg that aggregates whatever replies came back, if at least ``min_successes`` did.

    Flower already drops error replies and timed-out nodes from aggregation; this adds the
    floor: with fewer successes than that, the round keeps the previous global model
    rather than averaging a handful of clients into it.
    """

    def __init__(self, *, min_successes: int, **fedavg_options) -> None:
        if min_successes < 1:
            raise ConfigError(f"min_successes={min_successes} must be >= 1.")
        super().__init__(**fedavg_options)
        self.min_successes = min_successes
        self.failures_per_round: dict[int, int] = {}
        self.client_evaluation: dict[int, MetricRecord] = {}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        ok = [m for m in replies if not m.has_error()]
        self.failures_per_round[server_round] = len(replies) - len(ok)
        if len(ok) < self.min_successes:
            log.warning(
                "round %d: only %d of %d clients replied without error (minimum %d); keeping the previous model",
                server_round, len(ok), len(replies), self.min_successes,
            )
            return None, None
        return super().aggregate_train(server_round, ok)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        metrics = super().aggregate_evaluate(server_round, replies)
        if metrics is not None:
            self.client_evaluation[server_round] = metrics
        return metrics
