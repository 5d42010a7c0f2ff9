"""Devices as clients in simulation, on Flower: a few virtual SuperNodes each host a shard of
one-user devices (``--partition user``, ``--device-shards S``; device d lives on shard d mod S).

Each round the server samples the devices (a fraction of all, drawn from the run's seed and
the round) and sends every shard the list; a shard trains each of its sampled devices with the
same function a deployed device runs (``fedrec.federation.client.train_client``), one after
another, and replies the example-weighted mean of their models, with each item row's mean
over only the devices that trained it and that row's weight. The server then averages the
shards exactly as it would have averaged the devices. A round costs the devices' compute plus
one message per shard, instead of one Ray actor call and message per device.

Under central DP (``--dp central``) the server draws the cohort by secret Poisson sampling
and a shard replies the sum of its devices' clipped updates instead
(fedrec.federation.device_central_dp).

A shard that sums its devices' updates in clear is a trusted aggregator: that is a
simulation device, never a deployment recipe (deployed, each device is its own SuperNode).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.device_central_dp import ClippedSum
from fedrec.federation.summed_step import one_batch, summed_step, summed_step_applies
from fedrec.federation.wrapping import WrappingStrategy
from fedrec.privacy.modes import privacy_mode


def sample_devices(n_devices: int, fraction: float, seed: int, round_number: int) -> list[int]:
    """The round's devices: ``fraction`` of all (at least one), drawn from the seed and round.
    Runs without DP only: under central DP the cohorts are secret (``secret_poisson_cohort``)."""
    count = max(1, int(round(n_devices * fraction)))
    chosen = np.random.default_rng([seed, round_number]).choice(n_devices, size=min(count, n_devices), replace=False)
    return sorted(int(d) for d in chosen)


def hosted(devices: Iterable[int], shard: int, shards: int) -> list[int]:
    """The devices of ``devices`` that live on ``shard``."""
    return [d for d in devices if d % shards == shard]


def averages_touched_rows(federation: FederationConfig) -> bool:
    """Whether item rows are averaged over only the devices that trained them: --touched-rows,
    except under Mime, whose statistics move every row (as for stores)."""
    return bool(federation.touched_rows) and federation.drift_correction != "mime"


def check_device_shards(train: TrainConfig, federation: FederationConfig) -> None:
    """What a shard of devices cannot do yet, refused before the run."""
    if not federation.device_shards:
        return
    if federation.partition != "user":
        raise ConfigError("--device-shards hosts one-user devices; use it with --partition user (or drop it).")
    if privacy_mode(train.dp).stores_add_noise:
        raise ConfigError(f"--device-shards trains devices without DP or under --dp central (the server adds the noise); "
                          f"--dp {train.dp} would need each device to noise its own update: use --device-shards 0 (one "
                          "SuperNode per device) or --dp central.")
    if federation.secagg:
        raise ConfigError("--device-shards sums its devices in clear (a simulation device); SecAgg+ over devices needs "
                          "--device-shards 0, one SuperNode per device.")
    if federation.drift_correction == "scaffold" or federation.keep_optimizer_state:
        raise ConfigError("--device-shards: SCAFFOLD's control variates and kept optimizer state are per-device state a "
                          "shard does not keep; drop them (Mime's moments are the server's: they work) or use "
                          "--device-shards 0.")


class ShardSum:
    """A shard's running sums over its devices' models (float64): the example-weighted total of
    every array, and for item tables only over the rows each device trained."""

    def __init__(self, global_state: Mapping[str, torch.Tensor], row_keys: tuple[str, ...]) -> None:
        self.global_state = global_state
        self.row_keys = tuple(k for k in row_keys if k in global_state)
        self.totals: dict[str, np.ndarray] = {}
        self.row_weights: dict[str, np.ndarray] = {}
        self.weight = 0.0
        self.loss = 0.0
        self.devices = 0
        self.statistics: dict[str, torch.Tensor] = {}  # a drift correction's (Mime's) example-weighted sums

    def add(self, shared: Mapping[str, torch.Tensor], weight: float, loss: float,
            statistics: Mapping[str, torch.Tensor] | None = None) -> None:
        self.devices += 1
        self.weight += weight
        self.loss += weight * loss
        for key, value in (statistics or {}).items():
            if key in self.statistics:
                self.statistics[key].add_(value.double(), alpha=weight)
            else:
                self.statistics[key] = value.double().mul(weight)
        for key, value in shared.items():
            if not value.is_floating_point():  # lookup tables (attributes, vocabulary): as sent
                self.totals[key] = value.numpy()
                continue
            value = value.detach().double()
            if key in self.row_keys:
                start = self.global_state[key]
                touched = (value != start).reshape(len(start), -1).any(dim=1).double() * weight
                self.row_weights[key] = self.row_weights.get(key, np.zeros(len(start))) + touched.numpy()
                value = value.mul_(touched.reshape(-1, *([1] * (value.dim() - 1))))
            else:
                value = value.mul_(weight)
            if key in self.totals:
                self.totals[key] += value.numpy()
            else:
                self.totals[key] = value.numpy()

    def reply(self, row_averaging: bool) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """(arrays, metrics): the weighted mean model; with ``row_averaging`` each item row the
        mean over the devices that trained it (the global row where none did) and its weight."""
        arrays: dict[str, np.ndarray] = {}
        if not self.devices:  # no device of this shard was sampled: it adds nothing (weight 0)
            arrays = {key: value.numpy() for key, value in self.global_state.items()}
            if row_averaging:
                arrays.update({key + wire.TOUCHED_WEIGHT: np.zeros(len(self.global_state[key])) for key in self.row_keys})
            return arrays, {wire.NUM_EXAMPLES: 0.0, wire.TRAIN_LOSS: 0.0, wire.NUM_USERS: 0, wire.UNIT_WEIGHT: 1.0}
        for key, total in self.totals.items():
            dtype = self.global_state[key].numpy().dtype
            if total.dtype.kind in "iub":
                arrays[key] = total
            elif key in self.row_keys:
                weights = self.row_weights[key].reshape(-1, *([1] * (total.ndim - 1)))
                mean = np.where(weights > 0, total / np.maximum(weights, 1e-300), self.global_state[key].numpy())
                if not row_averaging:  # plain FedAvg: untouched rows count at the global value
                    mean = (total + (self.weight - weights) * self.global_state[key].numpy()) / self.weight
                else:
                    arrays[key + wire.TOUCHED_WEIGHT] = self.row_weights[key].astype(np.float64)
                arrays[key] = mean.astype(dtype)
            else:
                arrays[key] = (total / self.weight).astype(dtype)
        metrics = {wire.NUM_EXAMPLES: self.weight, wire.TRAIN_LOSS: self.loss / max(self.weight, 1e-300),
                   wire.NUM_USERS: self.devices, wire.UNIT_WEIGHT: 1.0}
        return arrays, metrics

    def add_sums(self, sums: Mapping[str, torch.Tensor], row_weights: Mapping[str, torch.Tensor], weight: float,
                 weighted_loss: float, devices: int) -> None:
        """Several devices at once, already summed (fedrec.federation.summed_step): ``sums`` as
        ``add`` would have totalled them, ``row_weights`` per item table, their total weight
        and weight x loss. Anything of the state they did not train stays as sent."""
        self.devices += devices
        self.weight += weight
        self.loss += weighted_loss
        for key, start in self.global_state.items():
            if not start.is_floating_point():
                self.totals[key] = start.numpy()
                continue
            value = sums[key] if key in sums else start.double() * weight
            self.totals[key] = self.totals[key] + value.numpy() if key in self.totals else value.numpy()
            if key in self.row_keys:
                self.row_weights[key] = self.row_weights.get(key, np.zeros(len(start))) + row_weights[key].numpy()

    def statistics_reply(self) -> dict[str, np.ndarray] | None:
        """The devices' example-weighted mean statistics (the server weighs shards by their
        examples, so its mean over shards is the mean over devices); None without any."""
        if not self.statistics or self.weight <= 0:
            return None
        return {key: (total / self.weight).float().numpy() for key, total in self.statistics.items()}


class DeviceSampling(WrappingStrategy):
    """The server's side: every round, the sampled devices go to every shard in the train
    config; the shards' replies are merged row by row (each item row over the devices that
    trained it, across shards) before the wrapped strategy averages them."""

    def __init__(self, inner: Strategy, *, cohort: Callable[[int], list[int]], row_averaging: bool) -> None:
        """``cohort(round)``: the round's devices (``sample_devices`` from the seed, or under
        central DP ``secret_poisson_cohort``)."""
        super().__init__(inner)
        self.cohort, self.row_averaging = cohort, row_averaging
        self.sampled: dict[int, int] = {}  # devices per round, for the logs

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        round_number = server_round + int(config.get(wire.ROUND_OFFSET, 0))
        devices = self.cohort(round_number)
        self.sampled[server_round] = len(devices)
        return self.inner.configure_train(server_round, arrays, ConfigRecord({**config, wire.SHARD_DEVICES: devices}), grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [m for m in replies if not m.has_error()]
        if replies:
            merge_touched_rows(replies)
        return self.inner.aggregate_train(server_round, replies)


def merge_touched_rows(replies: list[Message]) -> None:
    """Each item table's rows as the mean over every shard's devices that trained them: written
    into every reply, so the wrapped weighted mean of the replies is exactly that mean."""
    first = replies[0].content[wire.ARRAYS]
    for weight_key in [k for k in first.keys() if k.endswith(wire.TOUCHED_WEIGHT)]:
        key = weight_key[: -len(wire.TOUCHED_WEIGHT)]
        means = [m.content[wire.ARRAYS][key].numpy().astype(np.float64) for m in replies]
        weights = [m.content[wire.ARRAYS][weight_key].numpy() for m in replies]
        total = sum(w.reshape(-1, *([1] * (x.ndim - 1))) * x for w, x in zip(weights, means))
        weight = sum(weights).reshape(-1, *([1] * (means[0].ndim - 1)))
        merged = np.where(weight > 0, total / np.maximum(weight, 1e-300), means[0]).astype(first[key].numpy().dtype)
        for message in replies:
            arrays = message.content[wire.ARRAYS]
            arrays[key] = Array(merged)
            del arrays[weight_key]


def _summed_devices(model, sites: list, train: TrainConfig, stepping: TrainConfig, round_number: int):
    """(sums, row weights, weight, weighted loss) of the devices' one-step updates in one pass:
    each device's own batch from its own site, as train_client would read it."""
    from fedrec.data import leave_one_out
    from fedrec.federation.client import training_examples
    from fedrec.models.registry import model_class

    batches, weights = [], []
    for site in sites:
        split = leave_one_out(site.data)
        batch = one_batch(model, split, np.random.default_rng([model.config.seed, round_number, 0]))
        if batch is not None:
            batches.append(batch)
            weights.append(float(training_examples(split.train, train.model)))
    sums, row_weights, weighted_loss = summed_step(model, batches, weights, stepping.lr,
                                                   model_class(train.model).item_row_parameters)
    return sums, row_weights, float(sum(weights)), weighted_loss


def shard_devices(config: Mapping[str, Any]) -> list[int] | None:
    """The round's sampled devices a shard's train message carries (None: not a shard round)."""
    devices = config.get(wire.SHARD_DEVICES)
    return None if devices is None else [int(d) for d in devices]


def train_shard(node_config: Mapping[str, Any], train: TrainConfig, federation: FederationConfig,
                global_state: dict[str, torch.Tensor], round_number: int, devices: list[int], *,
                state_dir: str | None, run: str, global_control: dict[str, torch.Tensor] | None = None,
                ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray] | None]:
    """A shard's train reply (arrays, metrics, Mime's statistics or None): each of its sampled
    devices trained as a deployed device trains (its own site, its own private state), one
    after another, summed (ShardSum; under central DP each clipped first: ClippedSum)."""
    from fedrec.federation.client import (  # a device's own code
        build_client_model, locate_site, partitioned, round_config, stepping_config, train_client)
    from fedrec.models.registry import model_class, shares_every_parameter

    shard, shards = int(node_config[wire.NODE_PARTITION_ID]), int(node_config[wire.NODE_NUM_PARTITIONS])
    n_devices = partitioned(train, federation)[1].num_clients
    clipped = privacy_mode(train.dp).server_adds_noise
    total = (ClippedSum(global_state, clipping_norm=train.max_grad_norm) if clipped
             else ShardSum(global_state, model_class(train.model).item_row_parameters))
    stepping = stepping_config(round_config(train, federation, round_number), federation)
    mine = hosted(devices, shard, shards)
    sites = (locate_site({wire.NODE_PARTITION_ID: device, wire.NODE_NUM_PARTITIONS: n_devices}, train, federation, state_dir)
             for device in mine)
    reused = None  # one model for every device, where a model holds nothing private (LSTM, MLP; not MF's user vectors)
    if mine and not clipped and shares_every_parameter(train.model):
        first = next(sites)
        reused = build_client_model(first, stepping, global_state)
        if summed_step_applies(stepping, federation, reused):
            total.add_sums(*_summed_devices(reused, [first, *sites], train, stepping, round_number), devices=len(mine))
            return (*total.reply(row_averaging=averages_touched_rows(federation)), None)
        sites = itertools.chain([first], sites)
    for site in sites:
        if reused is None and shares_every_parameter(train.model):
            reused = build_client_model(site, stepping, global_state)
        update = train_client(site, train, federation, global_state, round_number, global_control, run=run, reuse=reused)
        total.add(update.shared, float(update.metrics[wire.NUM_EXAMPLES]), float(update.metrics[wire.TRAIN_LOSS]),
                  update.control_change)
    if clipped:
        return (*total.reply(), None)
    return (*total.reply(row_averaging=averages_touched_rows(federation)), total.statistics_reply())
