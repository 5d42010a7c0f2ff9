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

import numpy as np
import torch
from torch import nn

from fedrec.errors import ModelError
from fedrec.federation.client_state import state_file
from fedrec.federation.wrapping import ClientStatisticsExchange, weighted_mean
from fedrec.rundir import write_torch

log = logging.getLogger("fedrec.server")

SCAFFOLD = "scaffold"


class ScaffoldControl(ClientStatisticsExchange):
    """Server side: sends c with the model, and moves c by the clients' changes of c_i.

    ``c = sum_i p_i c_i`` over all N clients (p_i: the client's share of examples). A round
    with sampled clients S moves it by |S| / N times their example-weighted mean change,
    the weighted form of SCAFFOLD's update; with every client sampled that is exact. A
    client whose reply is lost has already moved its c_i, and c misses that change (as in
    the reference algorithm); keeping every client's c_i at the server would cost a model
    per client, which cross-device federations cannot afford.
    """

    checkpoint_prefix = "control"

    def absorb(self, statistics: list[dict[str, np.ndarray]], weights: list[float]) -> None:
        share = len(statistics) / max(self.connected, len(statistics))
        for key in statistics[0]:
            mean = weighted_mean(statistics, weights, key)
            self.state[key] = self.state.get(key, np.zeros_like(mean)) + share * mean

    def summary(self) -> None:
        log.info("SCAFFOLD drift correction: control variates sent with the model")
        self.inner.summary()


class ClientControl:
    """Client side for one round: corrects each local gradient, then computes the new c_i
    (SCAFFOLD's option II: the average gradient of this round's path, (x - y) / (K lr))."""

    def __init__(self, path: Path, global_control: dict[str, torch.Tensor], net: nn.Module, *,
                 shared: dict[str, torch.Tensor], lr: float) -> None:
        """``shared``: the global model's parameters that travel (only those get a control
        variate); the round starts from them, and ``lr`` is its learning rate."""
        self.path = path
        self.start, self.lr = shared, lr
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

    def finish(self) -> dict[str, torch.Tensor]:
        """Save the new c_i on this client's disk; return its change (what the server needs)."""
        if self.steps == 0:
            return {name: torch.zeros_like(c) for name, c in self.own.items()}
        new = {name: (self.start[name] - p.detach()) / (self.steps * self.lr) - self.federation[name] + self.own[name]
               for name, p in self.parameters.items()}
        write_torch(self.path, new)
        return {name: new[name] - self.own[name] for name in new}


def control_file(state_dir: Path, client_name: str) -> Path:
    return state_file(state_dir, client_name).with_suffix(".control.pt")
