"""Round 0 of a DP run, hand-built on the Grid: a QUERY message asks every client for noisy
item counts before training starts. Flower's strategy loop has no such round, so it lives
here rather than in the strategy."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.client import shared_dataset
from fedrec.federation.strategy import TolerantStrategy
from fedrec.models import create_model
from fedrec.models.registry import model_class
from fedrec.privacy.popularity_prior import save_released_prior

log = logging.getLogger("fedrec.server")


def starts_from_prior(train: TrainConfig) -> bool:
    return bool(train.dp and train.prior_noise and getattr(model_class(train.model), "uses_popularity_prior", False))


def with_popularity_prior(
    grid: Grid, train: TrainConfig, federation: FederationConfig, initial: dict[str, torch.Tensor],
    config: ConfigRecord, strategy: TolerantStrategy, run_dir: Path | None = None,
) -> dict[str, torch.Tensor]:
    """Round 0 of a DP run: every client releases noisy item counts (each accounted in its
    own ledger), the server sums them (post-processing) and the model starts from that
    popularity. A resumed run never asks again: its checkpoints already hold the prior.
    The sum is kept in ``run_dir`` for the federated audit, which under DP may read item
    popularity only from what was released and accounted."""
    node_ids = wait_for_nodes(grid, federation.min_available, federation.round_timeout)
    messages = [
        Message(content=RecordDict({wire.ARRAYS: ArrayRecord(initial), wire.CONFIG: config}), dst_node_id=node, message_type=MessageType.QUERY)
        for node in node_ids
    ]
    answers = list(grid.send_and_receive(messages, timeout=federation.round_timeout))
    replies = [m for m in answers if not m.has_error()]
    if not replies:
        reason = next((m.error.reason for m in answers if m.has_error()), "no reply within the round timeout")
        raise ConfigError(f"no client answered the popularity-prior query ({reason}); check the clients' logs, "
                          "or run without a prior (--prior-noise 0).")
    total = sum(m.content[wire.ARRAYS][wire.PRIOR_COUNTS].numpy() for m in replies)
    strategy.take_privacy_records(0, replies)
    log.info("popularity prior: noisy counts from %d of %d clients (noise multiplier %g each)", len(replies), len(node_ids), train.prior_noise)
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.load_partial_state(initial)
    model.apply_popularity_prior(total)
    if run_dir is not None:
        save_released_prior(run_dir, total)
    return model.shareable_state()


def wait_for_nodes(grid: Grid, wanted: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        node_ids = list(grid.get_node_ids())
        if len(node_ids) >= wanted or time.monotonic() > deadline:
            return node_ids
        time.sleep(1.0)
