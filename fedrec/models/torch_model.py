"""Shared plumbing of the neural recommenders: optimiser, the training loop, tensor state."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from fedrec.config import TrainConfig
from fedrec.data.split import LeaveOneOut
from fedrec.models.base import Recommender
from fedrec.errors import ModelError
from fedrec.training.loop import FitResult, fit_with_early_stopping, run_epoch


class TorchRecommender(Recommender):
    """A Recommender whose parameters live in one ``nn.Module`` (``self.net``).

    ``shareable_parameters`` names what federation may send (None: everything); the rest
    is private to the client that trained it (MF user embeddings).
    """

    shareable_parameters: tuple[str, ...] | None = None
    item_row_parameters: tuple[str, ...] = ()  # tables whose row i changes only if item i is trained on

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

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def fit(self, split: LeaveOneOut) -> FitResult:
        from fedrec.evaluation import evaluate  # evaluation depends on the model interface

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

    def train_epochs(self, split: LeaveOneOut, epochs: int, *, round_seed: int = 0) -> float:
        """Plain local training, no validation: what a federated client does each round."""
        optimizer = self.make_optimizer()
        loss = float("nan")
        for epoch in range(epochs):
            batches, n_batches = self.batches(split, np.random.default_rng([self.config.seed, round_seed, epoch]))
            loss = run_epoch(self.net, batches, self.loss, optimizer, description=f"local epoch {epoch + 1}", total=n_batches)
        self.net.eval()
        return loss

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
