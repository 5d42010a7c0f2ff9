"""A federation's defaults: the best recipe measured per model and mode.

Every unset (``None``) field of the two configs is filled here, once, before any process
starts; explicit values always win. The model's own fields (optimizer, learning rate per
optimizer, batch, DP vocabulary...) come from its class (``Recommender.recipe``); this module
adds what belongs to the federation. Figures behind each line: docs/results.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation.mime import MIME
from fedrec.models.registry import model_class, shares_every_parameter
from fedrec.privacy.modes import mode_names, privacy_mode

AUTO = "auto"  # drift_correction's "the recipe decides" ("none" is a choice of its own there)

# Stores (cross-silo), keyed by (model, the privacy mode's recipe_key: plain, dp or distributed).
STORE_RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    # 50 non-IID Beauty stores: 0.0646 test HR@10 at round 92 of 100, 0.97x centralised.
    # Client Adam with the federation's second moment (Mime without momentum), FedAvgM 0.9.
    ("lstm", "plain"): {"rounds": 100, "local_epochs": 2, "server_momentum": 0.9, "client_lr_decay": 1.0,
                        "drift_correction": MIME},
    # Every round spends budget: few rounds of one local epoch each.
    ("lstm", "dp"): {"rounds": 10, "local_epochs": 1, "server_momentum": 0.5, "client_lr_decay": 1.0,
                     "drift_correction": "none"},
    # 0.0310 after 40 rounds on 50 stores. Each store evaluates its own users with their
    # private vectors: the server has none and would fold in 22k of them every round.
    ("mf", "plain"): {"rounds": 40, "local_epochs": 2, "server_momentum": 0.5, "client_lr_decay": 0.95,
                      "drift_correction": "none", "server_eval": False, "fraction_evaluate": 1.0},
    ("mf", "dp"): {"rounds": 10, "local_epochs": 1, "server_momentum": 0.5, "client_lr_decay": 1.0,
                   "drift_correction": "none", "server_eval": False, "fraction_evaluate": 1.0},
}
# --dp distributed: the centralised DP recipe (fedrec.privacy.distributed_dp): rounds are the
# plan's (epochs x steps per epoch), one step each; the server evaluates every 20 rounds.
DISTRIBUTED: dict[str, Any] = {"rounds": None, "local_epochs": 1, "server_momentum": 0.0, "client_lr_decay": 1.0,
                               "drift_correction": "none", "touched_rows": False, "eval_every": 20, "secagg": True}
STORE_RECIPES.update({(model, "distributed"): DISTRIBUTED for model in ("lstm", "mlp")})
# One client per user (cross-device): sample 1% a round; the server evaluates a fixed sample
# of 2,000 users (MF: folded in), the LSTM's every 10th round: all 22k users every round cost
# more than the round.
CROSS_DEVICE: dict[str, dict[str, Any]] = {
    "lstm": {"fraction": 0.01, "drift_correction": "none", "server_momentum": 0.5, "eval_users": 2000, "eval_every": 10},
    "mf": {"fraction": 0.01, "server_eval": True, "fraction_evaluate": 0.0, "eval_users": 2000},
}
# Devices without DP, the LSTM: FedSGD with the server's Adam. One local SGD step per device
# makes the round's mean update the cohort's mean gradient, so FedAdam at lr 3e-3 is
# centralised Adam over batches of 223 users (the centralised LSTM's Adam runs at 3e-3). A
# device restarting Adam every round moved every weight by about its learning rate whatever
# the gradient, and 223 such moves averaged stalled the model at HR@10 ~0.03 (Mime's
# server-side scale did not help either). This recipe: 0.046 by round 100; 1,200 rounds take
# 13 minutes on 2 cores (a shard sums each round's one-step updates in one pass) and reach
# 0.0653 over all users (docs/results.md, "Devices as clients"). The client's SGD rate only
# sets the update's scale against FedAdam's tau (1e-3). Item rows are averaged over all
# devices, as measured (the server's Adam scales each coordinate itself; touched-row
# averaging was in fact off in the first runs: FedAdam returned float64, see TypedFedAdam).
CROSS_DEVICE_PLAIN: dict[str, dict[str, Any]] = {
    "lstm": {"local_epochs": 1, "strategy": "fedadam", "server_lr": 0.003, "server_momentum": 0.9, "rounds": 1200,
             "touched_rows": False},
}
DEVICE_OPTIMIZER = {"lstm": ("sgd", 10.0)}  # (client optimizer, lr) of CROSS_DEVICE_PLAIN
# The MLP takes the LSTM's recipes (every parameter shared, the same next-item loss); not
# tuned for it (docs/results.md, "The MLP federated").
STORE_RECIPES.update({("mlp", mode): STORE_RECIPES[("lstm", mode)] for mode in ("plain", "dp")})
CROSS_DEVICE["mlp"] = dict(CROSS_DEVICE["lstm"])  # not CROSS_DEVICE_PLAIN: the MLP's device recipe is not measured
# Under --secagg, Mime and touched-row averaging are out (both read single stores' updates).
# Client Adam without Mime stalls there (50 stores, 20 rounds: best 0.0177, 0.0134 at round
# 20); the SGD recipe climbs (0.0394 at round 20; in clear 0.0571 at 60 rounds, 0.0594 at
# 100). Keyed like STORE_RECIPES; the client optimizer it needs is SECURE_OPTIMIZER's.
SECURE_RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("lstm", "plain"): {"client_lr_decay": 0.97}, ("mlp", "plain"): {"client_lr_decay": 0.97},
}
SECURE_OPTIMIZER = {("lstm", "plain"): "sgd", ("mlp", "plain"): "sgd"}  # lr: the model's SGD rate (LSTM: 20)
COMMON: dict[str, Any] = {"strategy": "fedavgm", "server_lr": 1.0, "fraction": 1.0, "server_eval": True,
                          "fraction_evaluate": 0.0, "eval_users": 0, "touched_rows": True, "eval_every": 1,
                          "secagg": False, "device_shards": 0}
# Devices in `fedrec simulate`: this many virtual SuperNodes host them (fedrec.federation.device_shards),
# where a shard can (no DP, no SecAgg+: those need one SuperNode per device for now). Never
# elsewhere: deployed, every device is its own SuperNode.
DEVICE_SHARDS = 4


def _mode(train: TrainConfig) -> str:
    return privacy_mode(train.dp).recipe_key


def _plain_devices(train: TrainConfig, federation: FederationConfig) -> bool:
    """Whether the devices' FedSGD recipe (CROSS_DEVICE_PLAIN, DEVICE_OPTIMIZER) applies: devices,
    no DP, and the server optimizer left to the recipe or FedAdam."""
    return (federation.partition == "user" and not privacy_mode(train.dp).private
            and federation.strategy in (None, "fedadam"))


def _secure(train: TrainConfig, federation: FederationConfig) -> bool:
    """--secagg as given, else the mode's default (on under distributed DP)."""
    return privacy_mode(train.dp).secagg_default if federation.secagg is None else federation.secagg


def federation_recipe(train: TrainConfig, federation: FederationConfig, *, simulated: bool = False) -> dict[str, Any]:
    """The federation defaults for this model, mode and partition (``train`` resolved)."""
    key = (train.model, _mode(train))
    if key not in STORE_RECIPES:
        known = sorted({model for model, _ in STORE_RECIPES})
        if train.model in known:  # a federated model this mode cannot train: the mode says why
            privacy_mode(train.dp).check(train, federation, every_parameter_shared=shares_every_parameter(train.model),
                                         uses_popularity_prior=model_class(train.model).uses_popularity_prior)
            raise ConfigError(f"--dp {train.dp} has no recipe for --model {train.model}; use one of "
                              f"{', '.join(m for m, mode in STORE_RECIPES if mode == _mode(train))}.")
        raise ConfigError(f"--model {train.model} is not federated; use one of {', '.join(known)}.")
    recipe = {**COMMON, **STORE_RECIPES[key]}
    if federation.partition == "user":
        recipe.update(CROSS_DEVICE[train.model])
        if _plain_devices(train, federation):
            recipe.update(CROSS_DEVICE_PLAIN.get(train.model, {}))
        if simulated and not privacy_mode(train.dp).private and not _secure(train, federation):
            recipe["device_shards"] = DEVICE_SHARDS
    mime_fits = (train.optimizer == "adam" and not federation.keep_optimizer_state and not privacy_mode(train.dp).private
                 and not _secure(train, federation))
    if recipe["drift_correction"] == MIME and not mime_fits:
        recipe["drift_correction"] = "none"  # the user chose what Mime cannot combine with
    if _secure(train, federation):  # both read each store's own update, which SecAgg+ hides (check_secure_aggregation)
        recipe.update(touched_rows=False, **SECURE_RECIPES.get(key, {}))
    return recipe


def resolve_run(train: TrainConfig, federation: FederationConfig, *, item_attributes: bool,
                simulated: bool = False) -> tuple[TrainConfig, FederationConfig]:
    """Both configs with every default filled; resolving a resolved pair changes nothing.
    ``simulated``: for `fedrec simulate`, which may host devices in shards (DEVICE_SHARDS)."""
    secure_optimizer = SECURE_OPTIMIZER.get((train.model, _mode(train)))
    if _secure(train, federation) and train.optimizer is None and secure_optimizer:
        train = dataclasses.replace(train, optimizer=secure_optimizer)
    if _plain_devices(train, federation) and train.optimizer is None and train.model in DEVICE_OPTIMIZER:
        optimizer, lr = DEVICE_OPTIMIZER[train.model]
        train = dataclasses.replace(train, optimizer=optimizer, lr=lr if train.lr is None else train.lr)
    # Under distributed DP the federation is one central DP-SGD run: the model's centralised DP recipe.
    federated, private = privacy_mode(train.dp).model_recipe(federated=True)
    train = model_class(train.model).resolve_config(train, federated=federated, private=private, item_attributes=item_attributes)
    recipe = federation_recipe(train, federation, simulated=simulated)
    unset = {name: value for name, value in recipe.items() if getattr(federation, name) in (None, AUTO)}
    return train, dataclasses.replace(federation, **unset)


def describe_default(name: str) -> str | None:
    """What an unset field resolves to, per model and mode, for ``--help``; None when the
    field has a plain default (or none any model sets)."""
    parts = []
    for model in sorted({model for model, _ in STORE_RECIPES}):
        values = [(label, _mode_value(model, name, recipe, federated=federated, private=private))
                  for label, recipe, federated, private in _help_modes(model)]
        if name in CROSS_DEVICE[model]:
            values.append(("--partition user", CROSS_DEVICE[model][name]))
        shown, previous = [], None
        for label, value in values:
            if value is not None and value != previous:
                shown.append(f"{label} {_show(value)}")
                previous = value
        if shown:
            parts.append(f"{model}: " + ", ".join(shown))
    return "; ".join(parts) or None


def _help_modes(model: str) -> list[tuple[str, str | None, bool, bool]]:
    """(label, recipe key or None when not federated, federated, private) per mode --help shows."""
    modes = [("centralised", None, False, False), ("--dp", None, False, True)]
    for mode in map(privacy_mode, mode_names()):
        if (model, mode.recipe_key) in STORE_RECIPES:
            federated, private = mode.model_recipe(federated=True)
            modes.append(("federated" + (f" --dp {mode.name}" if mode.private else ""), mode.recipe_key, federated, private))
    return modes


def _mode_value(model: str, name: str, recipe: str | None, *, federated: bool, private: bool) -> Any:
    """``name``'s default in one --help mode."""
    if name in {f.name for f in dataclasses.fields(FederationConfig)}:
        return {**COMMON, **STORE_RECIPES[(model, recipe)]}.get(name) if recipe else None
    if name == "attribute_buckets":
        return model_class(model).catalog_attribute_buckets or None
    return model_class(model).recipe(federated=federated, dp=private).get(name)


def _show(value: Any) -> str:
    if isinstance(value, dict):  # learning rate per optimizer
        return "/".join(f"{optimizer} {lr:g}" for optimizer, lr in sorted(value.items()))
    return f"{value:g}" if isinstance(value, float) else str(value)
