"""The rounds of a ``--secagg`` run: Flower's SecAggPlusWorkflow inside its DefaultWorkflow.

In flwr 1.41 SecAgg+ runs only on the legacy path (a LegacyContext and a legacy
``flwr.server.strategy.Strategy``). ``SecureAggregationStrategy`` is that legacy strategy,
made of the run's own Message-API strategy (fedrec.federation.strategy): sampling, the
failure floor, the DP ledgers, FedAvgM's or FedAdam's step all stay there. It only changes
layouts: the global model goes out as legacy FitIns, stores answer with their deltas, and
the one unmasked weighted mean the workflow hands over comes back as a reply per store, each
with the mean (so the wrapped weighted average is that mean) and the store's own metrics,
which SecAgg+ does not mask.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import (
    EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters, Scalar, ndarray_to_bytes, ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat import LegacyContext
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy as LegacyStrategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from fedrec.config import FederationConfig
from fedrec.errors import ConfigError
from fedrec.federation import secagg_masks, wire
from fedrec.federation.secure_aggregation import (
    FEWEST_STORES, MODULUS_RANGE, QUANTIZATION_RANGE, distributed_protocol_sizes, error_bound, protocol_sizes,
)
from fedrec.federation.strategy import TolerantStrategy
from fedrec.privacy.distributed_dp import DistributedPlan
from fedrec.privacy.noise_check import CHECK_COORDINATES, CHECK_KEY

log = logging.getLogger("fedrec.server")
secagg_masks.install()  # SecAgg+ masks from the whole seed, as the stores' (fedrec.federation.secagg_masks)

AfterRound = Callable[[int, ArrayRecord], MetricRecord | None]


class _FitOnly(LegacyStrategy):
    """A legacy strategy for SecAggPlusWorkflow, which drives only fit: Flower's legacy
    evaluation workflow is given nothing to send (fedrec evaluates on the Message API)."""

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]],
                           failures: list[Any]) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}


class SecureAggregationStrategy(_FitOnly):
    """The legacy face of ``strategy`` for SecAggPlusWorkflow (see the module docstring).

    ``protocol`` is the workflow: its share count, threshold and max_weight are set per round
    here, in ``configure_fit``, which the workflow calls before it reads them.
    """

    def __init__(self, strategy: TolerantStrategy, protocol: SecAggPlusWorkflow, *, grid: Grid,
                 federation: FederationConfig, initial: ArrayRecord, config: ConfigRecord, after_round: AfterRound,
                 round_notes: dict[int, dict[str, float]], plan: DistributedPlan | None = None) -> None:
        self.strategy = strategy
        self.plan = plan  # --dp distributed: stores send noise shares at weight 1, every store a neighbour
        self.protocol = protocol
        self.grid = grid
        self.federation = federation
        self.initial = initial
        self.config = config
        self.after_round = after_round
        self.keys = list(initial.keys())
        self.like = {key: initial[key].numpy() for key in self.keys}  # dtype and shape of each array
        # Distributed DP: each share's check coordinates travel masked beside the model's arrays,
        # in a slot of zeros the stores fill with noise (serialised once, appended every round).
        slots = {CHECK_KEY: np.zeros(CHECK_COORDINATES, dtype=np.float32)} if plan is not None else {}
        self.like.update(slots)
        self.sent_keys = self.keys + list(slots)
        self.slot_bytes = [ndarray_to_bytes(slot) for slot in slots.values()]
        self.store_examples: dict[int, int] = {}  # node id -> training examples (its averaging weight)
        self.global_arrays = initial
        self.round_notes = round_notes  # per round: clipped coordinates, error bound (read by after_round)
        self.last_protocol: tuple[int, ...] | None = None  # (stores, neighbours, threshold, max weight) last logged

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self._parameters(self.initial)

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        self.global_arrays = self._arrays(parameters)
        config = ConfigRecord({**self.config, wire.SECAGG_KEYS: wire.SECAGG_KEY_SEPARATOR.join(self.sent_keys)})
        messages = list(self.strategy.configure_train(server_round, self.global_arrays, config, self.grid))
        if len(messages) < FEWEST_STORES:
            log.warning("round %d: %d stores sampled; secure aggregation needs at least %d (with two, each learns the "
                        "other's update from the sum), so the round is skipped", server_round, len(messages), FEWEST_STORES)
            return []
        if self.plan is not None and len(messages) < self.plan.survivors:
            log.warning("round %d: %d stores sampled, fewer than the %d whose noise shares the plan needs in a sum; the "
                        "round is not started (no sum of fewer shares is ever unmasked)", server_round, len(messages),
                        self.plan.survivors)
            return []
        if self.plan is not None:
            max_weight = 1
        else:
            max_weight = self.federation.secagg_max_weight or self._largest_weight([m.metadata.dst_node_id for m in messages])
        if max_weight is None:
            log.warning("round %d: no sampled store said how many examples it trains on; the round is skipped", server_round)
            return []
        for message in messages:
            message.content[wire.CONFIG][wire.SECAGG_ROUND_MAX_WEIGHT] = max_weight
        if self.plan is not None:  # only sums over `survivors` stores can be unmasked: each carries the full noise
            shares, threshold = distributed_protocol_sizes(len(messages), self.plan.survivors)
            self.protocol.clipping_range = self.plan.share_clip
        else:
            shares, threshold = protocol_sizes(len(messages), self.federation.secagg_shares)
        self.protocol.num_shares, self.protocol.reconstruction_threshold = shares, threshold
        self.protocol.max_weight = float(max_weight)
        rebuild = round(threshold * shares) if isinstance(threshold, float) else threshold  # Flower's reading of a float
        protocol = (len(messages), shares, rebuild, max_weight)
        log.log(logging.INFO if protocol != self.last_protocol else logging.DEBUG,  # said again only when it changes
                "round %d: secure aggregation over %d stores, %d neighbours each, %d shares rebuild a key, max weight %d",
                server_round, *protocol)
        self.last_protocol = protocol
        run_id = self.grid.run.run_id
        if self.slot_bytes:
            parameters = Parameters(tensors=[*parameters.tensors, *self.slot_bytes], tensor_type=parameters.tensor_type)
        return [
            (GridClientProxy(m.metadata.dst_node_id, self.grid, run_id), FitIns(parameters, dict(m.content[wire.CONFIG])))
            for m in messages
        ]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[Any]) -> tuple[Parameters | None, dict[str, Scalar]]:
        """``results`` all hold the same parameters: the unmasked example-weighted mean delta."""
        if not results:
            return None, {}
        mean_delta = parameters_to_ndarrays(results[0][1].parameters)
        # Distributed DP: each reply holds an equal part of the unmasked sum of noise shares.
        base = {key: 0.0 if self.plan is not None else self.global_arrays[key].numpy() for key in self.sent_keys}
        mean = ArrayRecord({
            key: Array((base[key] + delta.reshape(self.like[key].shape)).astype(self.like[key].dtype))
            for key, delta in zip(self.sent_keys, mean_delta)
        })
        replies = [_as_reply(mean, fitres) for _, fitres in results]
        examples = [int(fitres.num_examples) for _, fitres in results]
        self.round_notes[server_round] = {
            "secagg_clipped": float(sum(float(fitres.metrics.get(wire.SECAGG_CLIPPED, 0)) for _, fitres in results)),
            "secagg_error_bound": error_bound(examples, self.protocol.max_weight, self.protocol.clipping_range),
        }
        self.store_examples.update({proxy.node_id: int(fitres.num_examples) for proxy, fitres in results
                                    if fitres.num_examples > 0})  # a store's data may change between rounds
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        return (None if arrays is None else self._parameters(arrays)), dict(metrics or {})

    def _largest_weight(self, node_ids: list[int]) -> int | None:
        """The largest averaging weight among these stores; stores not heard from yet are
        asked first (a query answered with the number every train reply states in clear)."""
        unknown = [node for node in node_ids if node not in self.store_examples]
        if unknown:
            content = RecordDict({wire.CONFIG: self.config})
            asked = [Message(content=content, dst_node_id=node, message_type=f"{MessageType.QUERY}.{wire.TRAINING_EXAMPLES}")
                     for node in unknown]
            for reply in self.grid.send_and_receive(asked, timeout=self.federation.round_timeout):
                if not reply.has_error():
                    self.store_examples[reply.metadata.src_node_id] = int(reply.content[wire.METRICS][wire.NUM_EXAMPLES])
        known = [self.store_examples[node] for node in node_ids if node in self.store_examples]
        return max(known) if known and max(known) > 0 else None

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        """After each round (and before round 1): the stores' own evaluation, then the run's
        book-keeping (``after_round``), in the order Flower's Message-API strategies keep."""
        arrays = self._arrays(parameters)
        if server_round > 0:
            if server_round not in self.round_notes:  # the workflow halted before unmasking
                sampled = self.strategy.sampled_per_round.get(server_round, 0)
                self.strategy.failures_per_round[server_round] = sampled
                log.warning("round %d: secure aggregation did not complete (too few stores, or one kept fewer live "
                            "neighbours than the threshold); keeping the previous model", server_round)
            evaluation = self.strategy.configure_evaluate(server_round, arrays, self.config, self.grid)
            replies = self.grid.send_and_receive(list(evaluation), timeout=self.federation.round_timeout)
            self.strategy.aggregate_evaluate(server_round, replies)
        self.after_round(server_round, arrays)
        return None

    def _parameters(self, arrays: ArrayRecord) -> Parameters:
        return ndarrays_to_parameters([arrays[key].numpy() for key in self.keys])

    def _arrays(self, parameters: Parameters) -> ArrayRecord:
        values = parameters_to_ndarrays(parameters)
        return ArrayRecord({key: Array(np.asarray(value, dtype=self.like[key].dtype).reshape(self.like[key].shape))
                            for key, value in zip(self.keys, values)})


def _as_reply(mean: ArrayRecord, fitres: FitRes) -> Message:
    """A Message-API train reply carrying the securely averaged model and one store's metrics
    (and its DP ledger), as fedrec's strategies read replies."""
    metrics = dict(fitres.metrics)
    privacy = {key[len(wire.LEGACY_PRIVACY_PREFIX):]: metrics.pop(key) for key in list(metrics)
               if key.startswith(wire.LEGACY_PRIVACY_PREFIX)}
    content = RecordDict({
        wire.ARRAYS: mean,
        wire.METRICS: MetricRecord({key: value for key, value in metrics.items() if isinstance(value, (int, float))}),
    })
    if privacy:
        content[wire.PRIVACY] = ConfigRecord(privacy)
    return Message(content=content, dst_node_id=0, message_type=MessageType.TRAIN)


def run_secure_rounds(grid: Grid, context: Context, strategy: TolerantStrategy, federation: FederationConfig, *,
                      initial: ArrayRecord, num_rounds: int, config: ConfigRecord, after_round: AfterRound,
                      round_notes: dict[int, dict[str, float]], plan: DistributedPlan | None = None) -> None:
    """``num_rounds`` rounds under SecAgg+; ``round_notes`` gets each round's clipped
    coordinates and error bound before ``after_round`` runs."""
    protocol = SecAggPlusWorkflow(
        num_shares=3, reconstruction_threshold=2,  # placeholders: set per round from the sample
        clipping_range=federation.secagg_clip, quantization_range=QUANTIZATION_RANGE, modulus_range=MODULUS_RANGE,
        timeout=federation.round_timeout,
    )
    legacy = SecureAggregationStrategy(strategy, protocol, grid=grid, federation=federation, initial=initial,
                                       config=config, after_round=after_round, round_notes=round_notes, plan=plan)
    context = LegacyContext(context=context, config=ServerConfig(num_rounds=num_rounds, round_timeout=federation.round_timeout),
                            strategy=legacy)
    DefaultWorkflow(fit_workflow=protocol)(grid, context)


class SecureSum(_FitOnly):
    """One SecAgg+ exchange that sums a vector over ``nodes`` (what ``action`` names, answered
    by each store's train handler): the per-store vectors never reach the server. Each store
    sends weight 1 and clips at ``clip``, chosen so that the stochastic rounding of all stores
    together (at ``sum_quantization``) stays below half a unit: an integer sum is exact
    (``exact``), a float one (the distributed DP prior's noisy counts) within that much."""

    def __init__(self, grid: Grid, nodes: list[int], config: ConfigRecord, action: str, *, exact: bool = True,
                 parameters: Parameters | None = None) -> None:
        self.grid, self.nodes, self.config, self.action, self.exact = grid, nodes, config, action, exact
        self.parameters = parameters or ndarrays_to_parameters([])  # what the stores compute on (the audited model)
        self.total: np.ndarray | None = None
        self.replies: list[Message] = []  # each store's clear metrics (and DP ledger), as Message-API replies
        self.clipped = 0

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.parameters

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        config = {**self.config, wire.SECURE_SUM: self.action, wire.SECAGG_ROUND_MAX_WEIGHT: 1}
        run_id = self.grid.run.run_id
        return [(GridClientProxy(node, self.grid, run_id), FitIns(self.parameters, config)) for node in self.nodes]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[Any]) -> tuple[Parameters | None, dict[str, Scalar]]:
        if results:  # the workflow hands over the mean over the stores that sent (weights 1)
            mean = parameters_to_ndarrays(results[0][1].parameters)[0]
            total = mean.astype(np.float64) * len(results)
            self.total = np.rint(total).astype(np.int64) if self.exact else total
            self.replies = [_as_reply(ArrayRecord(), fitres) for _, fitres in results]
            self.clipped = int(sum(float(fitres.metrics.get(wire.SECAGG_CLIPPED, 0)) for _, fitres in results))
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        return None


def sum_quantization(stores: int) -> int:
    """The finest quantization a one-off sum over ``stores`` can take: the largest power of two
    whose ``stores`` copies still fit the modulus (so the sum never wraps), at most 2^30 (Flower
    rounds into int32). Three stores get 2^30, 256 times finer than a training round's 2^22."""
    return int(min(2**30, 2 ** math.floor(math.log2(MODULUS_RANGE // max(1, stores)))))


def exact_sum_clip(stores: int) -> float:
    """The largest clip at which ``stores`` stochastic roundings stay below half a unit."""
    return float(math.floor((sum_quantization(stores) / (4 * stores)) - 1))


def secure_sum(grid: Grid, context: Context, federation: FederationConfig, nodes: list[int], config: ConfigRecord,
               action: str, clip: float | None = None, survivors: int | None = None,
               arrays: ArrayRecord | None = None) -> tuple[np.ndarray, list[Message]]:
    """The sum over ``nodes`` of the vector ``action`` names, under SecAgg+ (exact for the
    integer ITEM_COUNTS and HISTORY_LENGTHS), and each summing store's clear metrics as a reply. ``clip``: the
    per-entry clip of a float sum (smaller is finer: the rounding step is 2 clip / Q);
    ``survivors``: the fewest stores whose sum may be unmasked (distributed DP's noise shares);
    ``arrays``: what the stores compute their vector on (the audited model), sent as the
    exchange's parameters with their names (SECAGG_KEYS)."""
    if len(nodes) < FEWEST_STORES:
        raise ConfigError(f"a secure sum over {len(nodes)} stores would give each the other's vector; it needs "
                          f"at least {FEWEST_STORES}.")
    if survivors is None:
        shares, threshold = protocol_sizes(len(nodes), federation.secagg_shares)
    elif len(nodes) < survivors:
        raise ConfigError(f"the secure sum of {action} needs {survivors} stores' noise shares and {len(nodes)} are "
                          "connected; it is not started (a sum of fewer shares carries less noise than accounted).")
    else:
        shares, threshold = distributed_protocol_sizes(len(nodes), survivors)
    clip = exact_sum_clip(len(nodes)) if clip is None else clip
    protocol = SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=threshold, max_weight=1.0,
                                  clipping_range=clip, quantization_range=sum_quantization(len(nodes)),
                                  modulus_range=MODULUS_RANGE, timeout=federation.round_timeout)
    keys = [] if arrays is None else list(arrays.keys())
    summing = SecureSum(grid, nodes, ConfigRecord({**config, wire.SECURE_SUM_CLIP: clip,
                                                   wire.SECAGG_KEYS: wire.SECAGG_KEY_SEPARATOR.join(keys)}),
                        action, exact=action in (wire.ITEM_COUNTS, wire.HISTORY_LENGTHS),
                        parameters=None if arrays is None else ndarrays_to_parameters([arrays[k].numpy() for k in keys]))
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1, round_timeout=federation.round_timeout),
                           strategy=summing)
    DefaultWorkflow(fit_workflow=protocol)(grid, legacy)
    if summing.total is None:
        raise ConfigError(f"the secure sum of {action} did not complete (stores dropped below the threshold); "
                          "see the server log, or rerun with --no-release-gate and audit where the data is.")
    if summing.clipped:
        log.warning("secure sum of %s: %d entries beyond %g were clipped (the sum is a bound there)",
                    action, summing.clipped, clip)
    return summing.total, summing.replies
