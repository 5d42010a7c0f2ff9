"""The one interface every recommender implements, documented once here.

- training: ``fedrec.training.fit_model(model, split)`` for every model. Models that learn
  without gradient steps (counting, similarities) implement ``fit(split)`` themselves; the
  neural ones (``torch_model.TorchRecommender``) expose batches and losses, and the training
  layer runs the loop, plain or DP-SGD. Models know nothing of the DP engine.
- ``score(users, histories)``: (B, n_items + 1) scores over ALL items; column 0 is padding.
  ``users`` are dense user indices (MF needs them), ``histories`` what each user has seen.
- ``recommend(users, histories, k)``: top-k item indices, seen items excluded.
- ``save(path)`` / ``fedrec.models.load_model(path)``: one file with the model name, sizes, the
  resolved config and the tensors; loading rebuilds the right class by name.

What serving, fold-in and the release audit may ask of any model (they never ask its class):

- ``item_vectors()``: the model's own item space (unit vectors, which items have one of their
  own, how a reason names the space), or None for models without one.
- ``item_similarities()``: a sparse item-item table of kept neighbours, or None.
- ``item_factors()``: (item vectors, item biases) when a user is scored as <user vector, item
  vector> + bias and user vectors are not kept with the model: serving folds users in from them.
- ``scorer_for(n_users)``: what ranks ``n_users`` users from their histories (the model, or a
  fold-in scorer where it holds no vector for them).
- ``history_length()``: the most recent items the model reads (None: all of them);
  ``predicts_next_item``: scores are for the item right after the history's last.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from fedrec.config import TrainConfig
from fedrec.data.interactions import Interactions
from fedrec.errors import ModelError
from fedrec.metrics import mask_seen
from fedrec.rundir import write_torch

FORMAT_VERSION = 1


@dataclass
class FitResult:
    """What training did: per-epoch records and which epoch's weights were kept."""

    epochs_run: int = 0
    best_epoch: int = 0
    best_valid_hr10: float | None = None
    stopped_because: str = "done"
    history: list[dict[str, float]] = field(default_factory=list)
    released_popularity: np.ndarray | None = None  # under DP: noisy item counts the fit released (and accounted)


class Scorer(Protocol):
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, n_items + 1) scores, as ``Recommender.score``."""


@dataclass(frozen=True)
class ItemVectors:
    """A model's item space: row i is item i's unit vector, zero for padding (row 0) and for
    items without a vector the model learnt for them alone (``own[i]`` False)."""

    vectors: torch.Tensor  # (n_items + 1, d), unit rows or zero
    own: np.ndarray  # (n_items + 1,) bool
    description: str  # how a reason names the space ("cosine in the model's item embeddings")


@dataclass(frozen=True)
class ItemFactors:
    """The item side of a model that scores <user vector, item vector> + item bias."""

    vectors: torch.Tensor  # (n_items + 1, d); row 0 padding
    bias: torch.Tensor  # (n_items + 1,)


def unit_rows(rows: torch.Tensor) -> torch.Tensor:
    """(n, d) -> (n, d) float rows scaled to norm 1; all-zero rows stay zero."""
    rows = rows.detach().float()
    norms = rows.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, rows / norms.clamp(min=1e-12), torch.zeros_like(rows))


class Recommender(ABC):
    name: ClassVar[str]
    # The best measured settings per mode, layered: centralised, then what changes on
    # federated clients, under --dp, and on federated clients under --dp. "lr" maps each
    # optimizer to its own rate, so --optimizer alone never inherits another optimizer's lr.
    defaults: ClassVar[dict[str, Any]] = {}
    federated_defaults: ClassVar[dict[str, Any]] = {}
    dp_defaults: ClassVar[dict[str, Any]] = {}
    federated_dp_defaults: ClassVar[dict[str, Any]] = {}
    catalog_attribute_buckets: ClassVar[int] = 0  # attribute encoder size whenever the data has item attributes
    uses_popularity_prior: ClassVar[bool] = False  # DP: starts from a noisy popularity release (apply_popularity_prior)
    releasable: ClassVar[bool] = True  # False: the model holds customers' data; the release gate never releases it
    not_releasable_because: ClassVar[str] = ""
    predicts_next_item: ClassVar[bool] = False  # scores are for the item right after the history's last one

    def __init__(self, config: TrainConfig, *, n_users: int, n_items: int) -> None:
        # A config the caller resolved (for its mode) comes through unchanged: every field the
        # plain recipe names is already set. An unresolved one gets the plain recipe.
        self.config = self.resolve_config(config)
        self.n_users = n_users
        self.n_items = n_items

    @classmethod
    def recipe(cls, *, federated: bool, dp: bool) -> dict[str, Any]:
        """The model's defaults for one mode (``lr`` as {optimizer: lr})."""
        layers = [cls.defaults, cls.federated_defaults if federated else {}, cls.dp_defaults if dp else {},
                  cls.federated_dp_defaults if federated and dp else {}]
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.items():
                merged[key] = {**merged.get(key, {}), **value} if key == "lr" else value
        return merged

    @classmethod
    def resolve_config(cls, config: TrainConfig, *, federated: bool = False, private: bool = False,
                       item_attributes: bool = False) -> TrainConfig:
        """Unset fields from the model's recipe for this mode (``private``: trained under DP,
        said by the caller: a model never reads the privacy mode); explicit values win. The
        learning rate follows the optimizer; the catalog's attributes are read whenever the
        data has them (``item_attributes``), in every mode: public, no privacy cost, and better
        measured (docs/results.md, "A shop's catalog")."""
        recipe = cls.recipe(federated=federated, dp=private)
        learning_rates = recipe.pop("lr", {})
        resolved = config.with_model_defaults(recipe)
        if resolved.lr is None and resolved.optimizer in learning_rates:
            resolved = resolved.with_model_defaults({"lr": learning_rates[resolved.optimizer]})
        if resolved.attribute_buckets is None:
            buckets = cls.catalog_attribute_buckets if item_attributes else 0
            resolved = resolved.with_model_defaults({"attribute_buckets": buckets})
        return resolved

    def use_item_attributes(self, data: Interactions) -> None:
        """Models that read catalog attributes (``--attribute-buckets``) take them here, before
        training or before a federation's first global state; the rest ignore them."""

    @abstractmethod
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor: ...

    @abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """Everything needed to score again, as tensors."""

    @abstractmethod
    def load_state(self, state: dict[str, torch.Tensor]) -> None: ...

    # --- what serving, fold-in and the release audit ask (defaults: a model with none of it)

    def item_vectors(self) -> ItemVectors | None:
        """The model's own item space, or None (models that score by counts or similarities)."""
        return None

    def item_similarities(self) -> sp.csr_matrix | None:
        """(n_items + 1, n_items + 1): row i holds item i's kept neighbours and their
        similarity; None for models that keep no item-item table."""
        return None

    def item_factors(self) -> ItemFactors | None:
        """The item side, for models that score <user vector, item vector> + bias and keep
        user vectors only for the users they were trained on; None for the rest."""
        return None

    def scorer_for(self, n_users: int) -> Scorer:
        """What ranks ``n_users`` users (dense indices) from their histories: the model itself."""
        return self

    def history_length(self) -> int | None:
        """How many of a history's most recent items the model reads (None: all)."""
        return None

    def recommend(self, users: np.ndarray, histories: Sequence[np.ndarray], k: int = 10) -> np.ndarray:
        """(B, k) item indices, best first, never an item the user has already seen."""
        with torch.inference_mode():
            scores = mask_seen(self.score(users, histories).float(), histories)
        return torch.topk(scores, k=min(k, self.n_items), dim=1).indices.numpy()

    def save(self, path: str | Path) -> Path:
        payload = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "config": self.config.to_dict(),
            "state": self.state(),
        }
        return write_torch(Path(path), payload)  # atomic: a crash never leaves a half-written model


def check_fitted(model: Recommender, ready: bool) -> None:
    if not ready:
        raise ModelError(f"{model.name}: call fit() (or load a saved model) before scoring.")

