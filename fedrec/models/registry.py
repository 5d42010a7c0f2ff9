"""Models by name: ``register_model(cls)`` and ``create_model(name, ...)``."""

from __future__ import annotations

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError
from fedrec.models.base import Recommender

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


def create_model(name: str, config: TrainConfig, *, n_users: int, n_items: int) -> Recommender:
    return model_class(name)(config, n_users=n_users, n_items=n_items)
