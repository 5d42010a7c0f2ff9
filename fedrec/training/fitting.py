"""``fit_model``: the one way any recommender is trained on a split, plain or private."""

from __future__ import annotations

import numpy as np

from fedrec.data.split import LeaveOneOut
from fedrec.errors import ConfigError
from fedrec.evaluation import evaluate
from fedrec.models.base import FitResult, Recommender
from fedrec.models.pop import Popularity
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.ledger import ClientLedger
from fedrec.privacy.modes import privacy_mode
from fedrec.training.loop import fit_with_early_stopping
from fedrec.training.private import fit_noisy_counts, fit_private


def fit_model(model: Recommender, split: LeaveOneOut) -> tuple[FitResult, ClientLedger | None]:
    """Train ``model`` on ``split.train``; returns what training did and, under ``--dp``, the
    ledger of what it spent. Neural models early-stop on validation HR@10 unless private
    (then every planned epoch runs and the last weights are kept)."""
    if privacy_mode(model.config.dp).stores_add_noise:
        if isinstance(model, TorchRecommender):
            return fit_private(model, split)
        if isinstance(model, Popularity):
            return fit_noisy_counts(model, split)
        raise ConfigError(f"{model.name} has no private training; drop --dp, or choose pop, mf, lstm or mlp.")
    if isinstance(model, TorchRecommender):
        return fit_neural(model, split), None
    return model.fit(split), None


def fit_neural(model: TorchRecommender, split: LeaveOneOut) -> FitResult:
    """Epochs with early stopping on validation HR@10 and the --max-minutes budget."""
    config = model.config
    return fit_with_early_stopping(
        model.net,
        epoch_batches=lambda epoch: model.batches(split, np.random.default_rng([config.seed, epoch])),
        loss_of=model.loss,
        optimizer=model.make_optimizer(),
        epochs=config.epochs,
        patience=config.patience,
        validate=lambda: evaluate(model, split.valid, mask_history=config.mask_history, ks=(10,))["hr@10"],
        max_seconds=None if config.max_minutes is None else 60.0 * config.max_minutes,
    )
