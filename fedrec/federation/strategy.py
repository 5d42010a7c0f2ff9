"""Strategy wrappers and the choice of Flower strategy for a run.

Behaviour is added by wrapping (as Flower's own DP strategies do): each wrapper takes any
strategy and passes through what it does not change (``WrappingStrategy``).
"""

from __future__ import annotations

import functools
import logging
from typing import Iterable

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, Strategy

from fedrec.config import FederationConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.device_central_dp import DeviceCentralDP, secret_poisson_cohort
from fedrec.federation.device_shards import DeviceSampling, averages_touched_rows, sample_devices
from fedrec.federation.distributed_step import DistributedDPStep
from fedrec.federation.ledger_collection import LedgerCollection
from fedrec.federation.mime import MIME, MimeStatistics
from fedrec.federation.scaffold import SCAFFOLD, ScaffoldControl
from fedrec.federation.wrapping import ClientStatisticsExchange, WrappingStrategy
from fedrec.models.torch_model import TorchRecommender
from fedrec.federation.secret_central_dp import SecretServerSideFixedClipping
from fedrec.privacy.central_dp import sampled_clients
from fedrec.privacy.distributed_dp import DistributedPlan

log = logging.getLogger("fedrec.server")


def _arrival_free_order(reply: Message) -> tuple[float, ...]:
    """Replies sorted by what they say, not by when they arrived: float sums then add in the
    same order in every run, so a resumed run ends where an unbroken one does even when a
    busy machine changes which client finishes first."""
    metrics = reply.content[wire.METRICS]
    return tuple(float(metrics.get(key, 0.0)) for key in (wire.NUM_EXAMPLES, wire.NUM_USERS, wire.TRAIN_LOSS))


class TolerantStrategy(WrappingStrategy):
    """Aggregate whatever replies came back, if at least ``min_successes`` did.

    Flower already leaves error replies and timed-out nodes out of the average; this adds a
    floor: with fewer successes the round keeps the previous global model instead of
    averaging a handful of clients into it. Failures per round are recorded for reports.
    """

    def __init__(self, inner: Strategy, *, min_successes: int) -> None:
        if min_successes < 1:
            raise ConfigError(f"min_successes={min_successes} must be >= 1.")
        super().__init__(inner)
        self.min_successes = min_successes
        self.failures_per_round: dict[int, int] = {}
        self.sampled_per_round: dict[int, int] = {}
        self.client_evaluation: dict[int, MetricRecord] = {}
        self.fixed_tables: dict[str, Array] = {}  # integer arrays last sent: kept through aggregation

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self.remember_sent(arrays)
        self.sampled_per_round[server_round] = len(messages)  # a node that never replies failed too
        return messages

    def remember_sent(self, arrays: ArrayRecord) -> None:
        """The integer arrays of the state sent this round, which aggregation leaves as they are."""
        self.fixed_tables = {k: a for k, a in arrays.items() if np.dtype(a.dtype).kind in "iub"}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        ok = [m for m in replies if not m.has_error()]
        sampled = max(self.sampled_per_round.get(server_round, 0), len(replies))
        self.failures_per_round[server_round] = sampled - len(ok)
        if len(replies) < sampled:
            log.warning("round %d: %d of %d nodes sent no reply within the round timeout", server_round, sampled - len(replies), sampled)
        for failed in (m for m in replies if m.has_error()):
            log.warning("round %d: node %d failed: %s", server_round, failed.metadata.src_node_id, failed.error.reason)
        ok = sorted(ok, key=_arrival_free_order)
        if len(ok) < self.min_successes:
            log.warning(
                "round %d: only %d of %d clients replied without error (minimum %d); keeping the previous model",
                server_round, len(ok), sampled, self.min_successes,
            )
            return None, None
        arrays, metrics = self.inner.aggregate_train(server_round, ok)
        return keep_fixed_tables(arrays, self.fixed_tables), metrics

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        metrics = self.inner.aggregate_evaluate(server_round, [m for m in replies if not m.has_error()])
        if metrics is not None:
            self.client_evaluation[server_round] = metrics
        return metrics

    def summary(self) -> None:
        log.info("tolerant of failed clients: at least %d successful replies per round", self.min_successes)
        self.inner.summary()


class TypedFedAdam(FedAdam):
    """Flower's FedAdam, its new model in the dtypes of the model it stepped from. Flower's adds
    float64 moments to the float32 arrays and returns float64: every later message carried the
    model at twice its size, and a client's float32 weights never equalled the global ones, so
    touched-row averaging counted every row as trained by every client (all rows averaged
    over all clients from round 2 on; found by the device shards' summed step)."""

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        dtypes = {key: np.asarray(array).dtype for key, array in (self.current_arrays or {}).items()}
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is not None and dtypes:
            arrays = ArrayRecord({key: Array(np.asarray(array.numpy(), dtype=dtypes.get(key, array.numpy().dtype)))
                                  for key, array in arrays.items()})
        return arrays, metrics


def build_strategy(
    federation: FederationConfig, *, row_keys: tuple[str, ...] = (), server_noise: tuple[float, float] | None = None,
    joint_step: tuple[TorchRecommender, DistributedPlan] | None = None, devices: tuple[int, int] | None = None,
) -> TolerantStrategy:
    """FedAvg, FedAvgM (server momentum; Hsu et al. 2019) or FedAdam (Reddi et al. 2021);
    ``server_noise=(noise_multiplier, clipping_norm)`` wraps it in Flower's server-side DP (secret
    noise; the mode's ``server_adds_noise``); ``joint_step=(global model, plan)`` (``joint_dp_sgd``) replaces the averaging with a DP-SGD step on the
    stores' noise shares (the round then needs the plan's survivors). ``devices=(devices, seed)``
    (``--device-shards``): the server samples devices and every shard trains its sampled ones;
    with ``server_noise`` the cohorts are secret Poisson draws and the devices clip their own
    updates (fedrec.federation.device_central_dp)."""
    common = dict(
        fraction_train=1.0 if devices else federation.fraction,  # shards: every one; the devices are sampled
        fraction_evaluate=federation.fraction_evaluate,
        min_train_nodes=federation.min_clients,
        min_evaluate_nodes=1 if federation.fraction_evaluate > 0 else 0,
        min_available_nodes=max(federation.min_clients, federation.min_available),
        weighted_by_key=wire.UNIT_WEIGHT if server_noise else wire.NUM_EXAMPLES,
        arrayrecord_key=wire.ARRAYS,
        configrecord_key=wire.CONFIG,
    )
    if joint_step is not None:
        model, plan = joint_step
        step = DistributedDPStep(model=model, plan=plan, **common)
        least = max(federation.min_clients, plan.survivors)
        return TolerantStrategy(LedgerCollection(step, min_successes=least), min_successes=least)
    if federation.strategy == "fedavg":
        inner: Strategy = FedAvg(**common)
    elif federation.strategy == "fedadam":
        inner = TypedFedAdam(**common, eta=federation.server_lr, beta_1=federation.server_momentum)
    else:
        inner = FedAvgM(**common, server_learning_rate=federation.server_lr, server_momentum=federation.server_momentum)
    if server_noise is not None and devices:  # no touched-row averaging under DP (see below)
        noise_multiplier, clipping_norm = server_noise
        inner = DeviceCentralDP(inner, noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
                                expected_cohort=federation.fraction * devices[0])
    elif server_noise is not None:
        # No touched-row averaging here: it would weigh a client's rows beyond the clipping bound.
        noise_multiplier, clipping_norm = server_noise
        inner = SecretServerSideFixedClipping(
            inner, noise_multiplier=noise_multiplier, clipping_norm=clipping_norm, num_sampled_clients=sampled_clients(federation),
        )
    elif federation.drift_correction in (SCAFFOLD, MIME):
        # No touched-row averaging: SCAFFOLD's c and Mime's momentum move every row on every
        # client (Mime without momentum does not; its recipe was measured without it).
        inner = (ScaffoldControl(inner) if federation.drift_correction == SCAFFOLD
                 else MimeStatistics(inner, beta_1=federation.mime_momentum))
    elif row_keys and federation.touched_rows and not devices:
        inner = TouchedRowsAveraging(inner, row_keys=row_keys)
    if devices:  # outermost: the sampled devices ride in the config every inner wrapper passes on
        cohort = (functools.partial(secret_poisson_cohort, devices[0], federation.fraction) if server_noise is not None
                  else functools.partial(sample_devices, devices[0], federation.fraction, devices[1]))
        inner = DeviceSampling(inner, cohort=cohort,
                               row_averaging=bool(row_keys) and averages_touched_rows(federation) and server_noise is None)
    ledgers = LedgerCollection(inner, min_successes=federation.min_clients)
    return TolerantStrategy(ledgers, min_successes=federation.min_clients)


class TouchedRowsAveraging(WrappingStrategy):
    """Average each row of the item tables over the clients that changed it.

    Plain FedAvg averages an item's embedding over all clients, including the many stores
    that never saw the item and return it unchanged, which shrinks its update by the
    share of data those stores hold: on non-IID stores item embeddings then hardly learn.
    Here a client's untouched rows (bit-identical to the global model it received; Adam
    leaves rows with no gradient exactly unchanged) are filled with the average of the
    clients that did touch them, so the wrapped strategy's weighted mean is that average.
    The server learns nothing it could not read off the uploaded arrays already.
    """

    def __init__(self, inner: Strategy, *, row_keys: tuple[str, ...]) -> None:
        super().__init__(inner)
        self.row_keys = row_keys
        self.global_arrays: ArrayRecord | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        ok = [m for m in replies if not m.has_error()]
        if ok and self.global_arrays is not None:
            for key in self.row_keys:
                if key in self.global_arrays:
                    _fill_untouched_rows(ok, key, self.global_arrays[key].numpy())
        return self.inner.aggregate_train(server_round, replies)

    def summary(self) -> None:
        log.info("item rows averaged over the clients that touched them: %s", ", ".join(self.row_keys))
        self.inner.summary()


def keep_fixed_tables(arrays: ArrayRecord | None, fixed: dict[str, Array]) -> ArrayRecord | None:
    """The integer arrays of the state (the catalog's attribute table, the vocabulary's item
    ids) are lookups, not weights: the aggregate keeps the ones the server sent. Averaged (and
    moved by server momentum) they drifted into ids past the table: an IndexError at round 49
    of a non-DP run with attributes."""
    if arrays is None or not fixed:
        return arrays
    kept = ArrayRecord()
    for key, array in arrays.items():
        kept[key] = fixed.get(key, array)
    return kept


def _fill_untouched_rows(replies: list[Message], key: str, global_rows: np.ndarray) -> None:
    arrays = [m.content[wire.ARRAYS][key].numpy() for m in replies]
    weights = [float(m.content[wire.METRICS][wire.NUM_EXAMPLES]) for m in replies]
    for message, filled in zip(replies, fill_untouched_rows(global_rows, arrays, weights)):
        message.content[wire.ARRAYS][key] = Array(filled)


def fill_untouched_rows(global_rows: np.ndarray, client_rows: list[np.ndarray], weights: list[float]) -> list[np.ndarray]:
    """Each client's table with the rows it left unchanged replaced by the weighted mean
    of the clients that changed them (rows nobody changed stay global). A weighted mean
    of the results is then, row by row, the mean over the clients that touched the row."""
    flat_global = global_rows.reshape(len(global_rows), -1)
    flat = [a.reshape(len(a), -1) for a in client_rows]
    touched = [np.any(a != flat_global, axis=1) for a in flat]  # (rows,) per client
    weight_sum = np.zeros(len(flat_global))
    total = np.zeros_like(flat_global, dtype=np.float64)
    for w, t, a in zip(weights, touched, flat):
        weight_sum += w * t
        total += (w * t)[:, None] * a
    mean = np.where(weight_sum[:, None] > 0, total / np.maximum(weight_sum, 1e-12)[:, None], flat_global)
    filled = []
    for a, t in zip(flat, touched):
        out = a.copy()
        out[~t] = mean[~t]
        filled.append(out.reshape(global_rows.shape).astype(global_rows.dtype))
    return filled


def _wrapped(strategy: Strategy) -> list[Strategy]:
    """The strategy and every one it wraps (our wrappers and Flower's DP wrapper), outermost first."""
    chain = [strategy]
    while (inner := getattr(chain[-1], "inner", None) or getattr(chain[-1], "strategy", None)) is not None:
        chain.append(inner)
    return chain


def distributed_step(strategy: Strategy) -> DistributedDPStep:
    """The DP-SGD step a --dp distributed run's strategy wraps."""
    return next(s for s in _wrapped(strategy) if isinstance(s, DistributedDPStep))


def _optimizer_strategy(strategy: Strategy) -> Strategy:
    return _wrapped(strategy)[-1]


def _exchange(strategy: Strategy) -> ClientStatisticsExchange | None:
    return next((s for s in _wrapped(strategy) if isinstance(s, ClientStatisticsExchange)), None)


def server_optimizer_state(strategy: Strategy) -> dict[str, torch.Tensor]:
    """FedAvgM's momentum or FedAdam's moments (and SCAFFOLD's c or Mime's moments), for the checkpoint: without
    them a resumed run restarts from zero, and its next rounds differ from an unbroken run."""
    inner = _optimizer_strategy(strategy)
    state: dict[str, torch.Tensor] = {}
    if (exchange := _exchange(strategy)) is not None:
        prefix = exchange.checkpoint_prefix
        state.update({f"{prefix}/{key}": torch.from_numpy(np.asarray(value)) for key, value in exchange.state.items()})
    if isinstance(inner, DistributedDPStep):
        state.update(inner.checkpoint_state())
    elif isinstance(inner, FedAdam):
        for name in ("m_t", "v_t"):
            state.update({f"{name}/{key}": torch.from_numpy(np.asarray(value)) for key, value in (getattr(inner, name) or {}).items()})
    elif isinstance(inner, FedAvgM) and inner.momentum_vector is not None:
        state.update({f"momentum/{index}": torch.from_numpy(np.asarray(value)) for index, value in enumerate(inner.momentum_vector)})
    return state


def restore_server_optimizer_state(strategy: Strategy, state: dict[str, torch.Tensor]) -> None:
    if not state:
        return
    inner = _optimizer_strategy(strategy)
    if (exchange := _exchange(strategy)) is not None:
        exchange.state = _saved_under(state, exchange.checkpoint_prefix)
    if isinstance(inner, DistributedDPStep):
        inner.restore_checkpoint_state(state)
    elif isinstance(inner, FedAdam):
        for name in ("m_t", "v_t"):
            setattr(inner, name, _saved_under(state, name))
    elif isinstance(inner, FedAvgM):
        momentum = sorted((int(index), value) for index, value in _saved_under(state, "momentum").items())
        inner.momentum_vector = [value for _, value in momentum] or None


def _saved_under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    """The entries saved as ``prefix/<key>``, by key."""
    return {key.split("/", 1)[1]: value.numpy() for key, value in state.items() if key.startswith(f"{prefix}/")}
