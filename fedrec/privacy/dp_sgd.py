"""DP-SGD with Opacus for the neural recommenders, continuing an existing privacy ledger.

One Opacus sample is one user: a model turns its train split into per-user samples
(``private_samples``), batches them (``private_batch``) and returns one loss per user
(``private_loss``), so the guarantee is user-level DP over the data this process trains
on. Batches are Poisson-sampled (what the accountant assumes) and gradients are clipped
with Opacus ghost clipping, which never materialises per-user gradients of the item
tables (per-sample hooks would: batch x items x dim floats), in one backward pass
instead of Opacus' two where the model's layers allow it (``bookkeeping``).

The accountant is never fresh: it is loaded with the ledger's history before training
and its history is returned after, so epsilon covers every round a client has trained.

Every draw the guarantee relies on, which users a step samples and the Gaussian noise, comes
from the caller's ``SecretNoise`` (fedrec.privacy.secret_noise): Opacus' optimizer keeps its
clipping and accounting, its noise step draws from the secret keystream instead of a
``torch.Generator``, and batches are Poisson-sampled from the same keystream.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants.utils import get_noise_multiplier
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy import bookkeeping
from fedrec.privacy.canaries import Canaries
from fedrec.privacy.ledger import History, delta_for, epsilon_of
from fedrec.privacy.secret_noise import Purpose, SecretNoise
from fedrec.progress import bar

if TYPE_CHECKING:
    from fedrec.data.split import LeaveOneOut

log = logging.getLogger("fedrec.privacy")


class PrivateTrainable(Protocol):
    """What DP-SGD needs of a model, as Opacus needs a module, optimizer and loader: the
    engine knows no model class (fedrec.models.torch_model.TorchRecommender is one)."""

    config: TrainConfig
    net: nn.Module

    def private_samples(self, split: "LeaveOneOut") -> Sequence[Any]:
        """One sample per unit of privacy (a user)."""

    def private_module(self) -> nn.Module:
        """The parameters DP-SGD trains (and clips)."""

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer: ...

    def private_batch(self, samples: Sequence[Any], rows: list[int]) -> Any: ...

    def private_loss(self, batch: Any) -> torch.Tensor:
        """(B,) per-sample losses."""


@dataclass(frozen=True)
class DPPlan:
    """The noise and sampling one DP training job uses, fixed before it starts."""

    noise_multiplier: float
    sample_rate: float
    steps_per_epoch: int
    delta: float
    max_grad_norm: float
    accountant: str

    def history_after(self, history: History, epochs: int) -> History:
        """The ledger history once ``epochs`` more epochs of this plan are spent."""
        return [*history, (self.noise_multiplier, self.sample_rate, epochs * self.steps_per_epoch)]

    def epsilon_after(self, history: History, epochs: int) -> float:
        return epsilon_of(self.history_after(history, epochs), self.delta, self.accountant)


def plan_dp(config: TrainConfig, *, records: int, planned_epochs: int, prefix: History = ()) -> DPPlan:
    """Noise given, or derived so that ``prefix`` (releases made before training, e.g. a
    popularity prior) plus ``planned_epochs`` over ``records`` users end at the target
    epsilon. Sampling is Poisson with rate 1 / batches-per-epoch, as Opacus does."""
    if records < 1:
        raise ConfigError("differential privacy needs at least one user to train on.")
    steps_per_epoch = max(1, math.ceil(records / config.batch_size))
    sample_rate = 1.0 / steps_per_epoch
    delta = delta_for(config.delta, records)
    if config.noise_multiplier is not None:
        noise = config.noise_multiplier
    else:
        noise = noise_for_target(
            config.target_epsilon, delta, sample_rate, planned_epochs * steps_per_epoch, config.accountant, tuple(prefix)
        )
    return DPPlan(noise, sample_rate, steps_per_epoch, delta, config.max_grad_norm, config.accountant)


@functools.lru_cache(maxsize=1024)
def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
                     prefix: tuple = ()) -> float:
    """The smallest noise reaching the target (cached: it costs seconds, and every round of
    every client with the same sampling asks it again). Without a prefix this is Opacus'
    own search; with one, a bisection on the composed history."""
    if prefix:
        if epsilon_of(list(prefix), delta, accountant) >= target_epsilon:
            raise ConfigError(
                f"the releases before training already spend epsilon {epsilon_of(list(prefix), delta, accountant):.3f} "
                f">= target {target_epsilon}; raise --target-epsilon or --prior-noise."
            )
        low, high = 0.1, 1.0
        while epsilon_of([*prefix, (high, sample_rate, steps)], delta, accountant) > target_epsilon:
            low, high = high, high * 2
            if high > 1e4:
                raise ConfigError(f"no noise multiplier reaches epsilon {target_epsilon} over {steps} steps; plan fewer.")
        while high - low > 0.005 * high:
            middle = (low + high) / 2
            if epsilon_of([*prefix, (middle, sample_rate, steps)], delta, accountant) > target_epsilon:
                low = middle
            else:
                high = middle
        return high
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        try:
            return float(get_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant=accountant,
            ))
        except ValueError as err:
            raise ConfigError(
                f"no noise multiplier reaches epsilon {target_epsilon} at delta {delta:g} over {steps} steps at "
                f"sample rate {sample_rate:.4g} ({err}); raise --target-epsilon or plan fewer rounds/epochs."
            ) from None


class _Indices(Dataset):
    """Sample i is just i: the model builds padded batches from its own per-user samples."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:
        return (torch.tensor(index, dtype=torch.int64),)  # Opacus reads sample 0's shape for empty batches

    def __getitems__(self, indices: list[int]) -> list[int]:
        """A whole batch at once: the DataLoader then skips one tensor per user (~1 ms a step)."""
        return list(indices)


def train_private(
    model: PrivateTrainable,
    split: "LeaveOneOut",
    plan: DPPlan,
    *,
    epochs: int,
    history: History,
    noise: SecretNoise,
    round_number: int = 0,
    after_epoch: Any = None,
    on_step: Any = None,
    canaries: Canaries | None = None,
) -> tuple[History, float]:
    """``epochs`` of DP-SGD on ``model``; returns (the accountant's history, mean loss).
    ``canaries`` ride along every step (fedrec.privacy.canaries), the model's run unchanged.

    ``noise`` draws every batch and every noise vector (``round_number`` keeps a federated
    client's rounds apart in its nonces). ``after_epoch(epoch, loss, history)`` is called after
    each epoch (central training validates there); ``on_step()`` after each optimizer step
    (benchmarks time steps with it). The model's net keeps the trained weights; Opacus' hooks
    are removed.
    """
    samples = model.private_samples(split)
    if len(samples) == 0:
        raise ConfigError("no user has enough train items for DP training (each needs at least 2).")
    module = model.private_module()
    one_backward = bookkeeping.supports(module)
    optimizer = model.make_optimizer(module)
    loader = DataLoader(_Indices(len(samples)), batch_size=model.config.batch_size)  # Opacus reads its size only
    module.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")  # the noise is secret: fedrec draws it
        warnings.filterwarnings("ignore", message=".*[Ff]ull backward hook.*")
        engine = PrivacyEngine(accountant=plan.accountant)
        engine.accountant.history = list(history)
        dp_module, dp_optimizer, _, dp_loader = engine.make_private(
            module=module, optimizer=optimizer, data_loader=loader, noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm, poisson_sampling=True, grad_sample_mode="ghost",
            criterion=nn.CrossEntropyLoss(),
        )
    if abs(1.0 / len(dp_loader) - plan.sample_rate) > 1e-12:
        raise RuntimeError(
            f"Opacus samples at rate {1 / len(dp_loader)} but the plan accounted {plan.sample_rate}: "
            "plan_dp must be given records=len(model.private_samples(split))."
        )
    steps = SecretSteps(noise, round_number, canaries=canaries, sample_rate=plan.sample_rate)
    dp_optimizer.add_noise = functools.partial(add_secret_noise, dp_optimizer, steps)
    if one_backward:
        bookkeeping.attach(dp_module)
    mean_loss = float("nan")
    try:
        for epoch in range(1, epochs + 1):
            dp_module.train()
            total, count = 0.0, 0
            batches = (steps.sample(len(samples), plan.sample_rate) for _ in range(len(dp_loader)))
            for indices in bar(batches, logger=log, desc=f"DP epoch {epoch}/{epochs}", total=len(dp_loader), unit="batch"):
                dp_optimizer.zero_grad(set_to_none=True)
                if len(indices) == 0:  # an empty Poisson batch still releases noise
                    for p in module.parameters():
                        if p.requires_grad:
                            p.grad = torch.zeros_like(p)
                else:
                    per_user = model.private_loss(model.private_batch(samples, indices.tolist()))
                    _clipped_sum_backward(dp_module, dp_optimizer, per_user, one_backward=one_backward)
                    total += float(per_user.detach().mean())
                    count += 1
                dp_optimizer.step()
                steps.taken += 1
                if on_step is not None:
                    on_step()
            mean_loss = total / max(1, count)
            if after_epoch is not None:
                dp_module.eval()
                after_epoch(epoch, mean_loss, list(engine.accountant.history))
    finally:
        dp_module.remove_hooks()
    model.net.eval()
    return [(float(n), float(q), int(s)) for n, q, s in engine.accountant.history], mean_loss


@dataclass
class SecretSteps:
    """Where a DP-SGD run is in its secret keystream: step ``taken`` samples and noises with
    nonce step ``taken``; with ``canaries``, each step also samples them at ``sample_rate``."""

    noise: SecretNoise
    round_number: int
    taken: int = 0
    canaries: Canaries | None = None
    sample_rate: float = 0.0

    def sample(self, population: int, rate: float) -> np.ndarray:
        return self.noise.poisson_sample(population, rate, round_number=self.round_number, step=self.taken)


def add_secret_noise(optimizer: Any, steps: SecretSteps) -> None:
    """Opacus' ``DPOptimizer.add_noise`` with the secret keystream as the source: N(0, (noise x
    clip)^2) on every coordinate of every parameter's clipped sum, one draw for them all, the
    canaries' block (fedrec.privacy.canaries) last in the same draw."""
    params = list(optimizer.params)
    for p in params:
        _check_processed_flag(p.summed_grad)
    references = [p.summed_grad for p in params]
    canaries = steps.canaries
    if canaries is not None:
        sampled = steps.noise.poisson_sample(canaries.size, steps.sample_rate, round_number=steps.round_number,
                                             step=steps.taken, purpose=Purpose.CANARY_SAMPLING)
        references.append(canaries.clipped_sum(sampled, optimizer.max_grad_norm).to(references[0].dtype))
    drawn = steps.noise.gaussians_like(references, optimizer.noise_multiplier * optimizer.max_grad_norm,
                                       purpose=Purpose.SGD_NOISE, round_number=steps.round_number, step=steps.taken)
    for p, noise in zip(params, drawn):
        p.grad = (p.summed_grad + noise).view_as(p)
        _mark_as_processed(p.summed_grad)
    if canaries is not None:
        canaries.add_step(references[-1] + drawn[-1], float(optimizer.noise_multiplier), steps.sample_rate)


def noisy_gradient_sum(model: PrivateTrainable, split: "LeaveOneOut", *, sample_rate: float, max_grad_norm: float,
                       noise_std: float, noise: SecretNoise, round_number: int,
                       check: int = 0) -> tuple[int, float, torch.Tensor]:
    """One store's part of a distributed DP-SGD step: a Poisson sample of its users, the sum of
    their gradients each clipped to ``max_grad_norm`` (ghost clipping, one backward where
    ``bookkeeping`` supports the layers) and N(0, noise_std^2) on every coordinate, both drawn
    from ``noise``, left in ``p.grad`` of the private module; no step is taken.
    Returns (users sampled, their mean loss, ``check`` noise-only coordinates drawn in the same
    draw: fedrec.privacy.noise_check): the first two may not leave the store."""
    samples = model.private_samples(split)
    module = model.private_module()
    chosen = [int(i) for i in noise.poisson_sample(len(samples), sample_rate, round_number=round_number, step=0)]
    for p in module.parameters():
        p.grad = None
    loss = float("nan")
    if chosen:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ff]ull backward hook.*")
            dp_module = GradSampleModuleFastGradientClipping(module, batch_first=True, loss_reduction="mean",
                                                             max_grad_norm=max_grad_norm, use_ghost_clipping=True)
        try:
            module.train()
            one_backward = bookkeeping.supports(module)
            if one_backward:
                bookkeeping.attach(dp_module)
            per_user = model.private_loss(model.private_batch(samples, chosen))
            clearing = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.0)  # no step: zeroes grads
            _clipped_sum_backward(dp_module, clearing, per_user, one_backward=one_backward)
            loss = float(per_user.detach().mean())
        finally:
            dp_module.remove_hooks()
            module.eval()
    trained = [p for p in module.parameters() if p.requires_grad]
    with torch.no_grad():
        clipped = [torch.zeros_like(p) if p.grad is None else p.grad for p in trained]
        checked = torch.zeros(check, dtype=clipped[0].dtype if clipped else torch.float32)
        *drawn, check_noise = noise.gaussians_like([*clipped, checked], noise_std, purpose=Purpose.SHARE_NOISE,
                                                   round_number=round_number, step=0)
        for p, c, share in zip(trained, clipped, drawn):
            p.grad = c + share
    return len(chosen), loss, check_noise


def _clipped_sum_backward(dp_module: Any, optimizer: torch.optim.Optimizer, per_user: torch.Tensor, *,
                          one_backward: bool) -> None:
    """sum_i c_i * grad_i into ``p.grad``: book-keeping's one backward where it supports the
    layers, else Opacus' two-pass ghost clipping."""
    if one_backward:
        bookkeeping.clipped_backward(dp_module, per_user)
    else:
        DPTensorFastGradientClipping(dp_module, optimizer, per_user, "mean").backward()
