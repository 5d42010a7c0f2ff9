"""The server's side of ``--dp distributed`` (fedrec.privacy.distributed_dp): each round, the
stores' noisy gradient shares are summed, divided by the expected batch (Opacus' mean over an
expected, not an actual, batch size) and the model's optimizer takes one step on the global
model, exactly where a central DP-SGD step would.

Flower's FedAvg still samples and sends; only the aggregation differs. A round with fewer
replies than the plan's ``survivors`` carries less than the planned noise: the strategy's
failure floor (``build_strategy``) is the survivors, so it is not applied.
Under --secagg every reply holds an equal part of the unmasked sum (secure_rounds), so the
replies sum to the same total either way. Each round's check coordinates are tested against
the shares' claimed noise (fedrec.privacy.noise_check) before the step.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.nodes import wait_for_nodes
from fedrec.models.registry import model_class
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.distributed_dp import DistributedPlan, plan_distributed
from fedrec.privacy.noise_check import CHECK_KEY, NoiseCheck, check_noise

log = logging.getLogger("fedrec.server")

CHECKPOINT_PREFIX = "server-optimizer"


class DistributedDPStep(FedAvg):
    """FedAvg's sampling with a DP-SGD step on the summed noise shares as the aggregation."""

    def __init__(self, *, model: TorchRecommender, plan: DistributedPlan, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self.model = model
        self.plan = plan
        self.parameters = model.shared_parameters()
        self.optimizer = model.make_optimizer()
        self.global_arrays: ArrayRecord | None = None
        self.noise_checks: dict[int, NoiseCheck] = {}  # server round -> its noise check (read by the server's after_round)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        # TolerantStrategy's floor (the plan's survivors) already kept rounds with fewer shares out.
        replies = [m for m in replies if not m.has_error() and wire.ARRAYS in m.content]
        self.noise_checks[server_round] = self._check_noise(server_round, replies)
        self.model.load_partial_state(self.global_arrays.to_torch_state_dict())
        self.optimizer.zero_grad(set_to_none=True)
        for name, parameter in self.parameters.items():
            total = np.sum([reply.content[wire.ARRAYS][name].numpy().astype(np.float64) for reply in replies], axis=0)
            parameter.grad = torch.from_numpy(total / self.plan.expected_batch).to(parameter.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return ArrayRecord(self.model.shareable_state()), MetricRecord({"noise-shares": len(replies)})

    def _check_noise(self, server_round: int, replies: list[Message]) -> NoiseCheck:
        """The round's check coordinates against the noise of the shares in the sum (stores
        that refused send none). A reply without them counts as a store whose noise is unchecked:
        the check then fails, whatever the others hold."""
        shares = sum(1 for m in replies if int(m.content[wire.METRICS].get(wire.NUM_EXAMPLES, 1)) > 0)
        found = [m.content[wire.ARRAYS][CHECK_KEY].numpy() for m in replies if CHECK_KEY in m.content[wire.ARRAYS]]
        if len(found) < len(replies) or not shares:
            return NoiseCheck(round=server_round, shares=shares, ratio=float("nan"), threshold=float("nan"), passed=False)
        return check_noise(np.sum(found, axis=0), shares=shares, share_std=self.plan.noise_share_std,
                           checks=self.plan.noise_checks, round_number=server_round)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The optimizer's moments (a resumed run continues them), as flat tensors."""
        state = self.optimizer.state_dict()["state"]
        return {f"{CHECKPOINT_PREFIX}/{index}/{key}": torch.as_tensor(value).clone()
                for index, values in state.items() for key, value in values.items()}

    def restore_checkpoint_state(self, saved: dict[str, torch.Tensor]) -> None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in saved.items():
            if key.startswith(f"{CHECKPOINT_PREFIX}/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        if state:
            self.optimizer.load_state_dict({"state": state, "param_groups": self.optimizer.state_dict()["param_groups"]})

    def summary(self) -> None:
        log.info("distributed DP: one DP-SGD step a round on the sum of at least %d stores' noise shares "
                 "(noise %.3f, sample rate %.4f, expected batch %.0f)", self.plan.survivors,
                 self.plan.noise_multiplier, self.plan.sample_rate, self.plan.expected_batch)


def plan_federation(grid: Grid, train: TrainConfig, federation: FederationConfig, config: ConfigRecord) -> DistributedPlan:
    """Ask every store how many customers it trains on, then fix the run's DP-SGD plan."""
    nodes = wait_for_nodes(grid, federation.min_available, federation.round_timeout)
    asked = [Message(content=RecordDict({wire.CONFIG: config}), dst_node_id=node,
                     message_type=f"{MessageType.QUERY}.{wire.PRIVATE_CUSTOMERS}") for node in nodes]
    replies = list(grid.send_and_receive(asked, timeout=federation.round_timeout))
    answered = [m for m in replies if not m.has_error()]
    if len(answered) < len(nodes):
        reason = next((m.error.reason for m in replies if m.has_error()), "no reply within the round timeout")
        raise ConfigError(f"--dp distributed: {len(nodes) - len(answered)} of {len(nodes)} stores did not say how many "
                          f"customers they have ({reason}); the plan needs every store. Check those stores' logs.")
    plan = plan_for_stores(train, federation, [int(m.content[wire.METRICS][wire.NUM_USERS]) for m in answered])
    log.info("distributed DP plan: %d customers in %d stores, %d rounds of one step at sample rate %.4f (expected "
             "batch %.0f), noise multiplier %.3f, each store adds noise std %.4f (any %d stores carry the full noise); "
             "epsilon %.3f at delta %.1e", plan.customers, len(nodes), plan.rounds, plan.sample_rate, plan.expected_batch,
             plan.noise_multiplier, plan.noise_share_std, plan.survivors, plan.epsilon, plan.delta)
    if not federation.secagg:
        log.warning("--dp distributed without --secagg: the server sees each store's noise share, which carries "
                    "1/sqrt(%d) of the noise; the released model has the full noise, the server's view does not "
                    "(both are in the privacy report)", plan.survivors)
    return plan


def plan_for_stores(train: TrainConfig, federation: FederationConfig, sizes: list[int]) -> DistributedPlan:
    """The run's plan from each store's customer count (deterministic: the privacy audit makes it again)."""
    return plan_distributed(train, federation, customers=sum(sizes), stores=len(sizes), largest_store=max(sizes, default=0),
                            uses_prior=getattr(model_class(train.model), "uses_popularity_prior", False))
