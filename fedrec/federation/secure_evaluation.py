"""Federated evaluation under client DP: the stores' test metrics as one SecAgg+ sum.

A store's HR@k and NDCG@k over its own test users come from its customers and no ledger
covers them, so under client DP (every --dp mode but central) no store sends them alone:
after each round the sampled stores add their user count, and each metric times that count,
into one secure sum, and the server learns only the user-weighted means over them, the
figure Flower's FedAvg reports in clear modes. The sum's clip is ``exact_sum_clip``: the user
count stays an exact integer, a metric's sum is within half a user of exact.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Mapping

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid

from fedrec.config import FederationConfig
from fedrec.federation import wire
from fedrec.federation.secure_aggregation import FEWEST_STORES
from fedrec.federation.secure_rounds import secure_sum
from fedrec.federation.wire_contract import DP_MODES, EVALUATION_METRICS

log = logging.getLogger("fedrec.server")


def evaluates_securely(mode: str, federation: FederationConfig) -> bool:
    """Whether this run's stores evaluate only into secure sums (client DP, and they evaluate)."""
    return mode in DP_MODES and bool(federation.fraction_evaluate)


def evaluation_vector(metrics: Mapping[str, float]) -> np.ndarray:
    """A store's part of the sum: [users, users x each of EVALUATION_METRICS]."""
    users = float(metrics[wire.NUM_EXAMPLES])
    return np.array([users, *(users * float(metrics[name]) for name in EVALUATION_METRICS)], dtype=np.float64)


def weighted_means(total: np.ndarray) -> dict[str, float]:
    """The user-weighted means (and the users) a summed ``evaluation_vector`` holds."""
    users = round(float(total[0]))
    if users <= 0:
        return {}
    return {wire.NUM_EXAMPLES: users, **{name: float(value) / users for name, value in zip(EVALUATION_METRICS, total[1:])}}


class SecureEvaluation:
    """After each round, the sampled stores' test metrics of the model, summed by SecAgg+."""

    def __init__(self, grid: Grid, context: Context, federation: FederationConfig, message_config: ConfigRecord) -> None:
        self.grid, self.context, self.federation, self.message_config = grid, context, federation, message_config
        self.said_too_few = False

    def __call__(self, state: Mapping[str, torch.Tensor], round_number: int) -> dict[str, float]:
        """The user-weighted means ({} when too few stores are connected for a sum that hides each one)."""
        nodes = sorted(self.grid.get_node_ids())
        wanted = max(1, math.ceil(float(self.federation.fraction_evaluate) * len(nodes)))
        nodes = sorted(random.Random(round_number).sample(nodes, min(wanted, len(nodes))))
        if len(nodes) < FEWEST_STORES:
            if not self.said_too_few:
                log.warning("%d stores to evaluate from round %d: under client DP their test metrics leave them only in a "
                            "secure sum, which needs %d (with 2, each would learn the other's); no federated evaluation "
                            "until then", len(nodes), round_number, FEWEST_STORES)
                self.said_too_few = True
            return {}
        total, _ = secure_sum(self.grid, self.context, self.federation, nodes, self.message_config, wire.EVALUATION,
                              arrays=ArrayRecord(dict(state)))
        return weighted_means(total)
