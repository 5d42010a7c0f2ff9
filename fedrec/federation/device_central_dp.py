"""User-level DP for devices hosted in shards, the server adding the noise (``--dp central
--partition user --device-shards S``): DP-FedAvg with Poisson-sampled cohorts (McMahan et al.
2018, "Learning differentially private recurrent language models").

- The server draws each round's cohort by Poisson sampling: every device joins independently
  with probability q = ``--fraction``, drawn from a fresh secret keystream (never from
  ``--seed``), so an outsider with the release cannot tell who took part and the sampling
  amplifies the guarantee against it.
- Each sampled device's update (its model minus the global model) is clipped to
  ``max-grad-norm`` on the device, with Flower's FlatClip (the ``fixedclipping_mod``'s
  ``clip_inputs_inplace``); the shard replies the sum of its devices' clipped updates and
  their count (``ClippedSum``).
- The server adds Gaussian noise of std z x C to the sum of the shards' sums, from a secret
  keystream, and divides by the *expected* cohort q x N, fixed: one device moves the mean by
  at most C / (qN) whatever the cohort's realised size, which would itself depend on that
  device. Global model + that noisy mean goes to the server optimizer (FedAvg, FedAvgM): the
  optimizer only post-processes the noised mean (Flower's own wrapper noises after it).
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.differential_privacy import clip_inputs_inplace, get_norm

from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.wrapping import WrappingStrategy
from fedrec.privacy.secret_noise import Purpose, SecretNoise

log = logging.getLogger("fedrec.server")


def secret_poisson_cohort(n_devices: int, rate: float, round_number: int) -> list[int]:
    """The round's devices, each kept with probability ``rate``, from a fresh secret key (the
    round only picks the nonce; nothing about the draw can be regenerated)."""
    return sorted(int(d) for d in SecretNoise.fresh().poisson_sample(n_devices, rate, round_number=round_number % 2**32,
                                                                      step=0))


def clip_update(update: list[np.ndarray], *, clipping_norm: float) -> float:
    """Scale ``update`` in place to L2 norm at most ``clipping_norm`` (Flower's FlatClip);
    returns its norm before clipping."""
    norm = get_norm(update)
    if norm > 0:  # Flower's clip divides by the norm
        clip_inputs_inplace(update, clipping_norm)
    return norm


class ClippedSum:
    """A shard's reply under central DP: the sum of its devices' clipped updates over every
    float array of the shared model (one flat vector: a device costs a few passes over it);
    integer tables are lookups, not updates, and stay out. No example weights and no row
    averaging: either would let one device count for more than its clipped update."""

    def __init__(self, global_state: Mapping[str, torch.Tensor], *, clipping_norm: float) -> None:
        self.shapes = {key: value.shape for key, value in global_state.items() if value.is_floating_point()}
        self.dtypes = {key: global_state[key].numpy().dtype for key in self.shapes}
        self.start = torch.cat([global_state[key].detach().reshape(-1).float() for key in self.shapes]).numpy()
        self.total = np.zeros(len(self.start))  # float64: the sum of up to a cohort of clipped updates
        self.clipping_norm = clipping_norm
        self.devices, self.weight, self.loss, self.clipped = 0, 0.0, 0.0, 0

    def add(self, shared: Mapping[str, torch.Tensor], weight: float, loss: float,
            statistics: Mapping[str, torch.Tensor] | None = None) -> None:
        if statistics:
            raise ConfigError("a device's drift statistics would reach the server unclipped under --dp central; drop "
                              "--drift-correction.")
        update = torch.cat([shared[key].detach().reshape(-1).float() for key in self.shapes]).numpy() - self.start
        if clip_update([update], clipping_norm=self.clipping_norm) > self.clipping_norm:
            self.clipped += 1
        self.total += update
        self.devices += 1
        self.weight += weight
        self.loss += weight * loss

    def reply(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """(arrays, metrics): the clipped updates' sum in the model's shapes and dtypes, and the count."""
        parts = np.split(self.total, np.cumsum([int(np.prod(shape)) for shape in self.shapes.values()])[:-1])
        arrays = {key: part.reshape(tuple(shape)).astype(self.dtypes[key])
                  for (key, shape), part in zip(self.shapes.items(), parts)}
        metrics = {wire.NUM_EXAMPLES: self.weight, wire.TRAIN_LOSS: self.loss / max(self.weight, 1e-300),
                   wire.NUM_USERS: self.devices, wire.UNIT_WEIGHT: 1.0}
        if self.devices:
            log.debug("shard: %d devices' updates clipped to %g (%d were longer)", self.devices, self.clipping_norm,
                      self.clipped)
        return arrays, metrics


def noisy_mean(total: Mapping[str, np.ndarray], *, noise_multiplier: float, clipping_norm: float,
               expected_cohort: float, noise: SecretNoise) -> dict[str, np.ndarray]:
    """(sum + N(0, (z C)^2)) / (qN), float64: the released mean update. The noise is drawn in
    float32, the model parameters' precision, as Opacus' secure mode draws it."""
    keys = list(total)
    references = [torch.from_numpy(np.asarray(total[key], dtype=np.float64)) for key in keys]
    drawn = noise.gaussians_like([value.float() for value in references], noise_multiplier * clipping_norm,
                                 purpose=Purpose.SERVER_NOISE, round_number=0, step=0)
    return {key: ((value + draw.double()) / expected_cohort).numpy() for key, value, draw in zip(keys, references, drawn)}


class DeviceCentralDP(WrappingStrategy):
    """The server's side: the shards' sums of clipped device updates, noised and divided by the
    expected cohort, handed to the wrapped optimizer as every reply's model (so its mean over
    the replies is exactly global + noisy mean)."""

    def __init__(self, inner: Strategy, *, noise_multiplier: float, clipping_norm: float, expected_cohort: float) -> None:
        super().__init__(inner)
        if not noise_multiplier > 0:
            raise ConfigError(f"--noise-multiplier {noise_multiplier:g}: central DP needs noise > 0 (e.g. 1.0).")
        if not clipping_norm > 0:
            raise ConfigError(f"--max-grad-norm {clipping_norm:g} must be > 0 (each device's update is clipped to it).")
        if not expected_cohort > 0:
            raise ConfigError(f"the expected cohort q x N = {expected_cohort:g} must be > 0: raise --fraction.")
        self.noise_multiplier, self.clipping_norm, self.expected_cohort = noise_multiplier, clipping_norm, expected_cohort
        self.global_arrays: ArrayRecord | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [m for m in replies if not m.has_error()]
        if not replies or self.global_arrays is None:
            return None, None
        released = self.release([m.content[wire.ARRAYS] for m in replies])
        for message in replies:
            message.content[wire.ARRAYS] = ArrayRecord({key: Array(value) for key, value in released.items()})
        return self.inner.aggregate_train(server_round, replies)

    def release(self, sums: list[ArrayRecord]) -> dict[str, np.ndarray]:
        """The global model plus the noisy mean of the shards' sums (integer tables as sent)."""
        start = {key: array.numpy() for key, array in self.global_arrays.items()}
        floats = [key for key, value in start.items() if value.dtype.kind == "f"]
        total = {key: sum(np.asarray(s[key].numpy(), dtype=np.float64) for s in sums) for key in floats}
        mean = noisy_mean(total, noise_multiplier=self.noise_multiplier, clipping_norm=self.clipping_norm,
                          expected_cohort=self.expected_cohort, noise=SecretNoise.fresh())
        log.info("central DP: secret Gaussian noise of std %.4g on the sum of the devices' clipped updates, over the "
                 "expected cohort %.4g", self.noise_multiplier * self.clipping_norm, self.expected_cohort)
        return {key: (value.astype(np.float64) + mean[key]).astype(value.dtype) if key in mean else value
                for key, value in start.items()}

    def summary(self) -> None:
        log.info("central DP on devices: updates clipped to %g on the device, noise %g x clip on the sum, over q x N = %g",
                 self.clipping_norm, self.noise_multiplier, self.expected_cohort)
        self.inner.summary()
