"""SCAFFOLD drift correction (Karimireddy et al., ICML 2020), for non-IID stores.

Each local SGD step on a store's data pulls the model towards that store's optimum. SCAFFOLD
adds (c - c_i) to every local gradient: c_i is this store's average gradient over its last
round, c the federation's average of those, so a store's steps follow the federation's
direction instead of its own. c_i stays on the client's disk; it sends only the change of
c_i (the server needs it to keep c the average).

The server's c travels with the model in every train message, under ``wire.CONTROL``; a
client's change of c_i comes back under the same key and is taken out of the reply before
the wrapped strategy averages the model. Plain SGD only (the correction is a gradient
term; under Adam it would be rescaled per coordinate), and not under DP (c_i is a
statistic of the store's data that no noise covers).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from torch import nn

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError, ModelError
from fedrec.federation import wire
from fedrec.federation.client_state import state_file
from fedrec.federation.wrapping import WrappingStrategy

log = logging.getLogger("fedrec.server")

SCAFFOLD = "scaffold"


def check_drift_correction(train: TrainConfig, federation: FederationConfig) -> None:
    """Refuse combinations SCAFFOLD's correction does not fit, before any process starts."""
    if federation.drift_correction != SCAFFOLD:
        return
    if train.dp or federation.central_dp:
        raise ConfigError(
            "--drift-correction scaffold sends each store's gradient statistics, which no DP noise covers; "
            "drop it for DP runs (--dp / --central-dp)."
        )
    if train.optimizer != "sgd":
        raise ConfigError(
            f"--drift-correction scaffold corrects plain SGD steps; the client optimizer is {train.optimizer!r}. "
            "Add --optimizer sgd (with its --lr), or drop the correction."
        )
    if federation.keep_optimizer_state:
        raise ConfigError("--drift-correction scaffold uses plain SGD, which has no optimizer state to keep; drop --keep-optimizer-state.")


class ScaffoldControl(WrappingStrategy):
    """Server side: sends c with the model, and moves c by the clients' changes of c_i.

    ``c = sum_i p_i c_i`` over all N clients (p_i: the client's share of examples). A round
    with sampled clients S moves it by |S| / N times their example-weighted mean change,
    the weighted form of SCAFFOLD's update; with every client sampled that is exact. A
    client whose reply is lost has already moved its c_i, and c misses that change (as in
    the reference algorithm); keeping every client's c_i at the server would cost a model
    per client, which cross-device federations cannot afford.
    """

    def __init__(self, inner: Strategy) -> None:
        super().__init__(inner)
        self.control: dict[str, np.ndarray] = {}
        self.connected = 0

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.connected = len(list(grid.get_node_ids()))
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        control = ArrayRecord({k: Array(v) for k, v in self.control.items()})  # built once, read by every message
        for message in messages:
            message.content[wire.CONTROL] = control
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        changes, weights = [], []
        for reply in replies:
            if reply.has_error() or wire.CONTROL not in reply.content:
                continue
            changes.append({k: v.numpy() for k, v in reply.content[wire.CONTROL].items()})
            weights.append(float(reply.content[wire.METRICS][wire.NUM_EXAMPLES]))
            del reply.content[wire.CONTROL]  # Flower's averaging expects one ArrayRecord per reply
        if changes and sum(weights) > 0:
            share = len(changes) / max(self.connected, len(changes))
            for key in changes[0]:
                mean = sum(w * change[key] for w, change in zip(weights, changes)) / sum(weights)
                self.control[key] = self.control.get(key, np.zeros_like(mean)) + share * mean
        return self.inner.aggregate_train(server_round, replies)

    def summary(self) -> None:
        log.info("SCAFFOLD drift correction: control variates sent with the model")
        self.inner.summary()


class ClientControl:
    """Client side for one round: corrects each local gradient, then computes the new c_i
    (SCAFFOLD's option II: the average gradient of this round's path, (x - y) / (K lr))."""

    def __init__(self, path: Path, global_control: dict[str, torch.Tensor], net: nn.Module, *, shared: Iterable[str]) -> None:
        """``shared``: names of the parameters that travel (only those get a control variate)."""
        self.path = path
        shared = set(shared)
        self.parameters = {name: p for name, p in net.named_parameters() if name in shared}
        saved = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}
        self.own = {name: saved.get(name, torch.zeros_like(p)) for name, p in self.parameters.items()}
        self.federation = {name: global_control.get(name, torch.zeros_like(p)) for name, p in self.parameters.items()}
        for name, p in self.parameters.items():
            for label, tensor in (("saved", self.own[name]), ("server's", self.federation[name])):
                if tuple(tensor.shape) != tuple(p.shape):
                    raise ModelError(
                        f"SCAFFOLD: the {label} control variate for {name} has shape {tuple(tensor.shape)}, the model "
                        f"{tuple(p.shape)}; was the client restarted with another model, dim or catalog? Move {path} "
                        "away to start its control variate fresh."
                    )
        self.offset = {name: self.federation[name] - self.own[name] for name in self.parameters}
        self.steps = 0

    def before_step(self) -> None:
        for name, p in self.parameters.items():
            if p.grad is not None:
                p.grad.add_(self.offset[name])
            else:  # a parameter no batch reached still follows the federation's direction
                p.grad = self.offset[name].clone()
        self.steps += 1

    def finish(self, start: dict[str, torch.Tensor], lr: float) -> dict[str, torch.Tensor]:
        """Save the new c_i on this client's disk; return its change (what the server needs)."""
        if self.steps == 0:
            return {name: torch.zeros_like(c) for name, c in self.own.items()}
        new = {name: (start[name] - p.detach()) / (self.steps * lr) - self.federation[name] + self.own[name]
               for name, p in self.parameters.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(new, tmp)
        tmp.replace(self.path)
        return {name: new[name] - self.own[name] for name in new}


def control_file(state_dir: Path, client_name: str) -> Path:
    return state_file(state_dir, client_name).with_suffix(".control.pt")
