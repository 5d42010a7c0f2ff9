"""The server's copy of each store's privacy ledger, taken from its replies, as a strategy
wrapper: a store that refused a round (its budget, its floor) is kept out of the aggregate and
counted. Every run has one (a mode without store noise simply sends no ledgers)."""

from __future__ import annotations

import json
import logging
from typing import Callable, Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.wrapping import WrappingStrategy
from fedrec.privacy.ledger import ClientLedger

log = logging.getLogger("fedrec.server")


class LedgerCollection(WrappingStrategy):
    """Keep each store's latest ledger; aggregate only the stores that trained, if at least
    ``min_successes`` did (a refusal is an answer, not a failure, but adds nothing)."""

    def __init__(self, inner: Strategy, *, min_successes: int) -> None:
        if min_successes < 1:
            raise ConfigError(f"min_successes={min_successes} must be >= 1.")
        super().__init__(inner)
        self.min_successes = min_successes
        self.privacy_ledgers: dict[str, ClientLedger] = {}  # each store's latest ledger (the server's, under --dp central)
        self.refusals_per_round: dict[int, int] = {}
        self.before_asking: Callable[[int], None] | None = None  # called with the round before it is sent

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        if messages and self.before_asking is not None:
            self.before_asking(server_round)
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        training = self.take_privacy_records(server_round, replies)
        if len(training) < self.min_successes:
            log.warning("round %d: only %d of %d stores trained (%d refused; minimum %d); keeping the previous model",
                        server_round, len(training), len(replies), len(replies) - len(training), self.min_successes)
            return None, None
        return self.inner.aggregate_train(server_round, training)

    def take_privacy_records(self, server_round: int, replies: list[Message]) -> list[Message]:
        """Keep each store's ledger; the replies of the stores that trained (refusals logged)."""
        training = []
        refused = 0
        for reply in replies:
            if wire.PRIVACY in reply.content:
                record = reply.content[wire.PRIVACY]
                ledger = ClientLedger.from_dict(json.loads(str(record[wire.PRIVACY_LEDGER])))
                self.privacy_ledgers[ledger.client] = ledger
                if wire.PRIVACY_REFUSED in record:
                    refused += 1
                    log.warning("round %d: %s", server_round, record[wire.PRIVACY_REFUSED])
                    continue
            training.append(reply)
        self.refusals_per_round[server_round] = refused
        return training


def ledger_collection(strategy: Strategy) -> LedgerCollection:
    """The LedgerCollection a built strategy holds (fedrec.federation.strategy.build_strategy)."""
    current: Strategy | None = strategy
    while current is not None:
        if isinstance(current, LedgerCollection):
            return current
        current = getattr(current, "inner", None)
    raise ValueError("this strategy keeps no ledgers; build it with fedrec.federation.strategy.build_strategy.")
