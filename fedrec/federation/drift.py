"""The combinations each drift correction fits, checked before any process starts."""

from __future__ import annotations

from fedrec.config import SEQUENCE_MODELS, FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation.mime import MIME
from fedrec.federation.scaffold import SCAFFOLD
from fedrec.privacy.modes import privacy_mode


def check_drift_correction(train: TrainConfig, federation: FederationConfig) -> None:
    name = federation.drift_correction
    if name not in (SCAFFOLD, MIME):
        return
    if privacy_mode(train.dp).private:
        raise ConfigError(
            f"--drift-correction {name} sends each store's gradient statistics, which no DP noise covers; "
            f"drop it for DP runs (--dp {train.dp})."
        )
    if federation.keep_optimizer_state:
        raise ConfigError(
            f"--drift-correction {name} takes its optimizer state from the server every round, so there is none "
            "for a client to keep; drop --keep-optimizer-state."
        )
    if name == SCAFFOLD and train.optimizer != "sgd":
        raise ConfigError(
            f"--drift-correction scaffold corrects plain SGD steps; the client optimizer is {train.optimizer!r}. "
            "Add --optimizer sgd (with its --lr), or drop the correction."
        )
    if name == MIME and train.optimizer != "adam":
        raise ConfigError(
            f"--drift-correction mime takes Adam steps with the server's moments; the client optimizer is "
            f"{train.optimizer!r}. Add --optimizer adam with an Adam learning rate (e.g. --lr 5e-3)."
        )
    if name == MIME and train.model not in SEQUENCE_MODELS:
        raise ConfigError(
            f"--drift-correction mime needs every parameter to travel; {train.model}'s user vectors stay on the "
            "client. Use it with --model lstm or mlp, or drop it."
        )
