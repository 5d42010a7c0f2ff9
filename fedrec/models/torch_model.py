"""Shared plumbing of the neural recommenders: optimiser, the training loop, tensor state."""

from __future__ import annotations

from abc import abstractmethod
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from fedrec.config import TrainConfig
from fedrec.data.split import LeaveOneOut
from fedrec.models.base import Recommender
from fedrec.errors import ModelError
from fedrec.privacy.ledger import ClientLedger, History
from fedrec.progress import time_left
from fedrec.training.loop import FitResult, fit_with_early_stopping, run_epoch

if TYPE_CHECKING:
    from fedrec.privacy.dp_sgd import DPPlan

log = logging.getLogger("fedrec.train")


class TorchRecommender(Recommender):
    """A Recommender whose parameters live in one ``nn.Module`` (``self.net``).

    ``shareable_parameters`` names what federation may send (None: everything); the rest
    is private to the client that trained it (MF user embeddings).
    """

    shareable_parameters: tuple[str, ...] | None = None
    item_row_parameters: tuple[str, ...] = ()  # tables whose row i changes only if item i is trained on
    privacy_unit: str = "user (their train history)"  # what one Opacus sample is; reads "one <unit>"
    privacy_ledger: ClientLedger | None = None  # set by a DP fit: what training spent
    uses_popularity_prior = False  # DP: start from a noisy popularity release (see apply_popularity_prior)

    def __init__(self, config: TrainConfig, *, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        torch.manual_seed(self.config.seed)
        self.net = self.build_net()

    @abstractmethod
    def build_net(self) -> nn.Module: ...

    @abstractmethod
    def batches(self, split: LeaveOneOut, rng: np.random.Generator) -> tuple[Iterable[Any], int]:
        """One epoch of training batches (and their count), shuffled by ``rng``."""

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor: ...

    def make_optimizer(self, module: nn.Module | None = None) -> torch.optim.Optimizer:
        """--optimizer over ``module`` (default: the whole net; DP: ``private_module()``)."""
        kind = torch.optim.SGD if self.config.optimizer == "sgd" else torch.optim.Adam
        return kind((self.net if module is None else module).parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    # --- differential privacy: one Opacus sample per user (see fedrec.privacy.dp_sgd) ---

    @abstractmethod
    def private_samples(self, split: LeaveOneOut) -> Sequence[Any]:
        """One entry per user that DP training samples from."""

    @abstractmethod
    def private_batch(self, samples: Sequence[Any], rows: list[int]) -> Any:
        """The training batch of the chosen samples."""

    @abstractmethod
    def private_loss(self, batch: Any) -> torch.Tensor:
        """(B,) loss per user: Opacus clips each user's gradient separately."""

    def private_module(self) -> nn.Module:
        """The parameters DP-SGD trains (and adds noise to)."""
        return self.net

    def prepare_private(self, split: LeaveOneOut) -> None:
        """Work before DP training that touches only local, never-released state."""

    def apply_popularity_prior(self, counts: np.ndarray) -> None:
        """Start from (noisy) item popularity; models with ``uses_popularity_prior`` override."""
        raise NotImplementedError(f"{self.name} has no popularity prior")

    def prior_release(self) -> History:
        """The ledger entry of the prior this model starts DP training from (if any)."""
        from fedrec.privacy.popularity_prior import prior_segment

        return prior_segment(self.config.prior_noise) if self.uses_popularity_prior and self.config.prior_noise else []

    def privacy_mechanism(self) -> str:
        prior = " after one gaussian release of item counts (popularity prior)" if self.prior_release() else ""
        return "dp-sgd (opacus, poisson sampling, ghost clipping)" + prior

    def train_private_epochs(self, split: LeaveOneOut, epochs: int, plan: "DPPlan", history: History, *, seed: int, after_epoch: Any = None) -> tuple[History, float]:
        from fedrec.privacy.dp_sgd import train_private

        self.prepare_private(split)
        return train_private(self, split, plan, epochs=epochs, history=history, seed=seed,
                             secure_mode=self.config.secure_mode, after_epoch=after_epoch)

    def fit_private(self, split: LeaveOneOut) -> FitResult:
        """Centralised DP training for ``epochs`` epochs (no early stopping: every epoch is
        planned into the noise); the final weights are kept, so no choice is made on
        validation data outside the privacy accounting."""
        from fedrec.evaluation import evaluate
        from fedrec.privacy.dp_sgd import plan_dp, warn_if_not_secure

        warn_if_not_secure(self.config)
        records = len(self.private_samples(split))
        prior = self.prior_release()
        plan = plan_dp(self.config, records=records, planned_epochs=self.config.epochs, prefix=prior)
        ledger = ClientLedger("central", plan.accountant, plan.delta, plan.max_grad_norm,
                              mechanism=self.privacy_mechanism(), unit=self.privacy_unit)
        if prior:
            from fedrec.privacy.popularity_prior import noisy_popularity

            noise = prior[0][0]
            self.apply_popularity_prior(noisy_popularity(split.train, self.n_items, noise, seed=self.config.seed, secure_mode=self.config.secure_mode))
            ledger.record_round(0, prior)  # epoch 0: the popularity release
        result = FitResult(stopped_because=f"trained the {self.config.epochs} planned DP epochs")
        started = time.perf_counter()

        def after_epoch(epoch: int, loss: float, history: History) -> None:
            ledger.record_round(epoch, history)
            valid = evaluate(self, split.valid, mask_history=self.config.mask_history, ks=(10,))["hr@10"]
            result.history.append({"epoch": epoch, "loss": loss, "valid_hr@10": valid, "epsilon": ledger.epsilon,
                                   "seconds": time.perf_counter() - started})
            left = time_left(time.perf_counter() - started, epoch, self.config.epochs)
            log.info("DP epoch %d/%d loss %.4f valid HR@10 %.4f epsilon %.3f (delta %.1e, noise %.3f, q %.4f)%s",
                     epoch, self.config.epochs, loss, valid, ledger.epsilon, plan.delta, plan.noise_multiplier, plan.sample_rate,
                     f", {left}" if left else "")

        self.train_private_epochs(split, self.config.epochs, plan, prior, seed=self.config.seed, after_epoch=after_epoch)
        self.privacy_ledger = ledger
        result.epochs_run = result.best_epoch = self.config.epochs
        result.best_valid_hr10 = result.history[-1]["valid_hr@10"] if result.history else None
        return result

    def fit(self, split: LeaveOneOut) -> FitResult:
        from fedrec.evaluation import evaluate  # evaluation depends on the model interface

        if self.config.dp:
            return self.fit_private(split)
        optimizer = self.make_optimizer()
        max_seconds = None if self.config.max_minutes is None else 60.0 * self.config.max_minutes
        return fit_with_early_stopping(
            self.net,
            epoch_batches=lambda epoch: self.batches(split, np.random.default_rng([self.config.seed, epoch])),
            loss_of=self.loss,
            optimizer=optimizer,
            epochs=self.config.epochs,
            patience=self.config.patience,
            validate=lambda: evaluate(self, split.valid, mask_history=self.config.mask_history, ks=(10,))["hr@10"],
            max_seconds=max_seconds,
        )

    def train_epochs(self, split: LeaveOneOut, epochs: int, *, round_seed: int = 0,
                     optimizer_state: dict[int, Any] | None = None,
                     before_step: Callable[[], None] | None = None) -> tuple[float, dict[int, Any]]:
        """Plain local training, no validation: what a federated client does each round.
        Returns (mean loss of the last epoch, the optimizer's per-parameter state).
        ``optimizer_state`` (from an earlier round) continues the optimizer; the learning rate
        stays this round's."""
        optimizer = self.make_optimizer()
        if optimizer_state:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            for index, values in optimizer_state.items():
                shapes = {tuple(v.shape) for v in values.values() if isinstance(v, torch.Tensor) and v.dim() > 0}
                if index >= len(params) or shapes - {tuple(params[index].shape)}:
                    raise ModelError(
                        f"{self.name}: the saved optimizer state does not fit this model (parameter {index}); was the "
                        "client restarted with another model, dim or catalog? Move its .optimizer.pt file away to start fresh."
                    )
            optimizer.load_state_dict({"state": optimizer_state, "param_groups": optimizer.state_dict()["param_groups"]})
        loss = float("nan")
        for epoch in range(epochs):
            batches, n_batches = self.batches(split, np.random.default_rng([self.config.seed, round_seed, epoch]))
            loss = run_epoch(self.net, batches, self.loss, optimizer, description=f"local epoch {epoch + 1}", total=n_batches,
                             before_step=before_step)
        self.net.eval()
        return loss, optimizer.state_dict()["state"]

    def shareable_state(self) -> dict[str, torch.Tensor]:
        state = self.state()
        names = self.shareable_parameters or tuple(state)
        return {name: state[name] for name in names}

    def private_state(self) -> dict[str, torch.Tensor]:
        shared = set(self.shareable_parameters or ())
        return {} if self.shareable_parameters is None else {k: v for k, v in self.state().items() if k not in shared}

    def load_partial_state(self, partial: dict[str, torch.Tensor]) -> None:
        """Overwrite some parameters (the global shared ones, or a client's private ones)."""
        state = self.state()
        unknown = set(partial) - set(state)
        if unknown:
            raise ModelError(f"{self.name}: parameters {sorted(unknown)} are not in this model.")
        for name, value in partial.items():
            if tuple(value.shape) != tuple(state[name].shape):
                raise ModelError(
                    f"{self.name}: parameter {name} has shape {tuple(value.shape)}, expected "
                    f"{tuple(state[name].shape)}; were client and server started with the same data/catalog and dim?"
                )
        state.update(partial)
        self.load_state(state)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state)
        self.net.eval()
