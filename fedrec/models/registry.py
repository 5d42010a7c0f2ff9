"""Models by name: ``register_model(cls)``, ``create_model(name, ...)`` and
``load_model(path)`` (a saved file names its model)."""

from __future__ import annotations

from pathlib import Path

import torch

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError, ModelError
from fedrec.models.base import FORMAT_VERSION, Recommender

_MODELS: dict[str, type[Recommender]] = {}


def register_model(cls: type[Recommender]) -> type[Recommender]:
    if cls.name in _MODELS and _MODELS[cls.name] is not cls:
        raise ConfigError(f"a model named {cls.name!r} is already registered ({_MODELS[cls.name]}).")
    _MODELS[cls.name] = cls
    return cls


def model_names() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type[Recommender]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(model_names())}.") from None


def shares_every_parameter(name: str) -> bool:
    """Whether a federated model sends every trained parameter (no per-user part stays on a client)."""
    return getattr(model_class(name), "shareable_parameters", ()) is None


def create_model(name: str, config: TrainConfig, *, n_users: int, n_items: int) -> Recommender:
    return model_class(name)(config, n_users=n_users, n_items=n_items)


def load_model(path: str | Path) -> Recommender:
    """A model saved by ``Recommender.save``, rebuilt as the class its file names."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise ModelError(f"{path}: not a readable fedrec model file ({err}).") from None
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: model format {payload.get('format_version')} is not {FORMAT_VERSION}.")
    config = TrainConfig.from_mapping(payload["config"])
    model = create_model(payload["model"], config, n_users=payload["n_users"], n_items=payload["n_items"])
    model.load_state(payload["state"])
    return model
