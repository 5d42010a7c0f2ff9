"""MimeLite (Karimireddy et al., "Mime", 2020): client Adam steps with the server's statistics.

A store that restarts Adam every round moves every parameter by about its learning rate
in its first steps, whatever the gradient, and averaging those moves stalls the model
(docs/results.md, "Federated results"); plain client SGD avoids that but lacks Adam's per-coordinate
scale, which rare items' embedding rows need most. MimeLite keeps Adam's moments at the
server, one copy for the federation: they travel with the model, every client takes its
local steps with them frozen (Adam's step from the moments plus the current gradient, the
moments not updated), so all stores step with the same momentum and scale instead of
drifting apart. Each client sends back the mean square of its minibatch gradients (and,
with momentum, their mean), and the server moves the moments by their example-weighted
averages, once per round. (Mime's paper uses a full-batch gradient at the global model for the momentum; the
mean gradient of the local steps costs no extra pass over the store's data.)

On 50 Beauty stores the frozen momentum stalled the model; Adam's scale alone
(``--mime-momentum 0``) with server momentum is the best federated LSTM recipe measured
(docs/results.md, "Federated results").

Not under DP: the gradient statistics are of the store's data and no noise covers them.
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
import torch
from flwr.serverapp.strategy import Strategy
from torch import nn

from fedrec.errors import ModelError
from fedrec.federation.wrapping import ClientStatisticsExchange, weighted_mean

log = logging.getLogger("fedrec.server")

MIME = "mime"
BETA_2 = 0.99  # per round: the scale averages about the last 100 rounds' squared gradients
EPSILON = 1e-8
STEP = "step"  # how many rounds have moved the moments (Adam's bias correction)


class MimeStatistics(ClientStatisticsExchange):
    """Server side: sends Adam's moments (``m/<param>``, ``v/<param>``, ``step``) with the
    model; moves them by the clients' mean gradients (``g/``) and squares (``g2/``)."""

    checkpoint_prefix = "mime"

    def __init__(self, inner: Strategy, *, beta_1: float) -> None:
        super().__init__(inner)
        self.beta_1 = beta_1

    def absorb(self, statistics: list[dict[str, np.ndarray]], weights: list[float]) -> None:
        for key in statistics[0]:
            kind, name = key.split("/", 1)
            mean = weighted_mean(statistics, weights, key)
            moment, beta = ("m", self.beta_1) if kind == "g" else ("v", BETA_2)
            previous = self.state.get(f"{moment}/{name}", np.zeros_like(mean))
            self.state[f"{moment}/{name}"] = (beta * previous + (1.0 - beta) * mean).astype(mean.dtype)
        self.state[STEP] = np.asarray([int(self.state.get(STEP, np.zeros(1))[0]) + 1], dtype=np.int64)

    def summary(self) -> None:
        log.info("MimeLite: clients step with the server's Adam moments (beta_1 %g, beta_2 %g per round)", self.beta_1, BETA_2)
        self.inner.summary()


class ClientMime:
    """Client side for one round: turns each minibatch gradient into Adam's step from the
    server's frozen moments (run with plain SGD at the Adam learning rate), and sums the
    gradients and their squares for the reply."""

    def __init__(self, statistics: dict[str, torch.Tensor], net: nn.Module, *, shared: Iterable[str], beta_1: float,
                 weight_decay: float = 0.0) -> None:
        shared = set(shared)
        self.beta_1 = beta_1
        self.parameters = {name: p for name, p in net.named_parameters() if name in shared}
        self.weight_decay = weight_decay
        # Without momentum (beta_1 0) Adam's first moment is the current gradient: the
        # server keeps no m and the clients send no mean gradient.
        self.m, self.v = {}, {}
        tables = (("m", self.m), ("v", self.v)) if beta_1 > 0 else (("v", self.v),)
        for name, p in self.parameters.items():
            for moment, table in tables:
                value = statistics.get(f"{moment}/{name}")
                if value is not None and tuple(value.shape) != tuple(p.shape):
                    raise ModelError(
                        f"MimeLite: the server's {moment} for {name} has shape {tuple(value.shape)}, the model "
                        f"{tuple(p.shape)}; the server and this client disagree on the model, dim or item catalog."
                    )
                table[name] = torch.zeros_like(p) if value is None else value.to(p.dtype)
        step = int(statistics[STEP].reshape(-1)[0]) if STEP in statistics else 0
        # The step taken now is Adam's step number step + 1.
        self.correction_1 = 1.0 - beta_1 ** (step + 1)
        self.correction_2 = 1.0 - BETA_2 ** (step + 1)
        self.gradient_sum = {name: torch.zeros_like(p) for name, p in self.parameters.items()} if beta_1 > 0 else {}
        self.square_sum = {name: torch.zeros_like(p) for name, p in self.parameters.items()}
        self.steps = 0

    @torch.no_grad()
    def before_step(self) -> None:
        for name, p in self.parameters.items():
            g = torch.zeros_like(p) if p.grad is None else p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p
            self.square_sum[name].addcmul_(g, g)
            v = self.v[name].mul(BETA_2).addcmul_(g, g, value=1.0 - BETA_2).div_(self.correction_2)
            if self.beta_1 > 0:
                self.gradient_sum[name].add_(g)
                m = self.m[name].mul(self.beta_1).add_(g, alpha=1.0 - self.beta_1).div_(self.correction_1)
                p.grad = m.div_(v.sqrt_().add_(EPSILON))
            else:
                p.grad = g.div(v.sqrt_().add_(EPSILON))
        self.steps += 1

    def finish(self) -> dict[str, torch.Tensor]:
        """The round's mean gradient (with momentum) and mean squared gradient, per shared parameter."""
        n = max(1, self.steps)
        return {**{f"g/{name}": s / n for name, s in self.gradient_sum.items()},
                **{f"g2/{name}": s / n for name, s in self.square_sum.items()}}
