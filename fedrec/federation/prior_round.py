"""Round 0 of a DP run, hand-built on the Grid: a QUERY message asks every client for noisy
item counts before training starts. Flower's strategy loop has no such round, so it lives
here rather than in the strategy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.client import shared_dataset
from fedrec.federation.ledger_collection import ledger_collection
from fedrec.federation.nodes import wait_for_nodes
from fedrec.federation.secure_rounds import secure_sum
from fedrec.federation.strategy import TolerantStrategy
from fedrec.models import create_model
from fedrec.models.registry import model_class
from fedrec.privacy.distributed_dp import DistributedPlan
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.noise_check import CHECK_COORDINATES, check_noise, describe, record_noise_check
from fedrec.privacy.popularity_prior import save_released_prior

log = logging.getLogger("fedrec.server")


def starts_from_prior(train: TrainConfig) -> bool:
    return bool(privacy_mode(train.dp).stores_add_noise and train.prior_noise and getattr(model_class(train.model), "uses_popularity_prior", False))


def with_popularity_prior(
    grid: Grid, train: TrainConfig, federation: FederationConfig, initial: dict[str, torch.Tensor],
    config: ConfigRecord, strategy: TolerantStrategy, run_dir: Path | None = None, *,
    plan: DistributedPlan | None = None, context: Context | None = None,
) -> dict[str, torch.Tensor]:
    """Round 0 of a DP run: every client releases noisy item counts (each accounted in its
    own ledger), the server sums them (post-processing) and the model starts from that
    popularity. A resumed run never asks again: its checkpoints already hold the prior.
    The sum is kept in ``run_dir`` for the federated audit, which under DP may read item
    popularity only from what was released and accounted.

    Under distributed DP (``plan``) each count vector carries only a share of the noise: the
    sum needs the plan's survivors, and under --secagg it is a SecAgg+ sum (``context``)."""
    node_ids = wait_for_nodes(grid, federation.min_available, federation.round_timeout)
    if plan is not None and federation.secagg:
        # No store's count of an item exceeds the federation's customers; its noise share stays within 10 std.
        clip = plan.customers + 10.0 * plan.prior_share
        total, replies = secure_sum(grid, context, federation, node_ids, config, wire.PRIOR_COUNTS, clip=clip,
                                    survivors=plan.survivors)
        return _start_from(total, replies, node_ids, train, federation, initial, strategy, run_dir, plan)
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
    return _start_from(total, replies, node_ids, train, federation, initial, strategy, run_dir, plan)


def _start_from(total: np.ndarray, replies: list[Message], node_ids: list[int], train: TrainConfig,
                federation: FederationConfig, initial: dict[str, torch.Tensor], strategy: TolerantStrategy,
                run_dir: Path | None, plan: DistributedPlan | None) -> dict[str, torch.Tensor]:
    """The initial model from the summed counts, once the stores' ledgers are kept."""
    ledger_collection(strategy).take_privacy_records(0, replies)
    if plan is not None:  # each share ends in its check coordinates
        total, checked = total[:-CHECK_COORDINATES], total[-CHECK_COORDINATES:]
        check = check_noise(checked, shares=len(replies), share_std=plan.prior_share, checks=plan.noise_checks,
                            round_number=0)
        if run_dir is not None:
            record_noise_check(run_dir, check)
        (log.info if check.passed else log.error)(describe(check))
    if plan is not None and len(replies) < plan.survivors:
        raise ConfigError(
            f"popularity prior: {len(replies)} of {len(node_ids)} stores sent their share, fewer than the {plan.survivors} "
            "the noise is sized for, so the sum is not released. Check the missing stores' logs (a lifetime cap?), or "
            "raise --dp-dropout."
        )
    shares = f"each a share (noise multiplier {plan.prior_share:.3f}) of one release at {plan.prior_noise:g}" if plan else \
        f"noise multiplier {train.prior_noise:g} each"
    log.info("popularity prior: noisy counts from %d of %d clients (%s)", len(replies), len(node_ids), shares)
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.load_partial_state(initial)
    model.apply_popularity_prior(total)
    if run_dir is not None:
        save_released_prior(run_dir, total)
    return model.shareable_state()

