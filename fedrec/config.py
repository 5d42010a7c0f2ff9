"""The one typed configuration of a fedrec run.

Every knob lives here once. The CLI builds its flags from these fields and Flower's run
config (kebab-case keys) maps onto the same names, so a run is described the same way
wherever it starts. The resolved config (model defaults filled in) is written into every
metrics file and checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from fedrec.errors import ConfigError


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


Config = typing.TypeVar("Config", bound="_Mapped")


class _Mapped:
    """What every config class shares: a plain dict of its fields, and construction from a
    mapping with snake_case or kebab-case keys (unknown keys are errors)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls: type[Config], values: Mapping[str, Any]) -> Config:
        return from_mapping(cls, values)


LEGACY_DP = {"true": "local", "false": "off", "1": "local", "0": "off"}  # dp was a bool: --dp = local
SEQUENCE_MODELS = ("lstm", "mlp")  # next-item models over a history (fedrec.models.sequence_net)


@dataclass(frozen=True)
class TrainConfig(_Mapped):
    """What to train, on what data, and how. ``None`` means "the model's own default"."""

    model: str = _opt("lstm", "recommender to train", ("pop", "itemknn", "userknn", "mf", "lstm", "mlp"))
    data: str = _opt("beauty", "'beauty' (embedded) or a path to .txt/.csv/.parquet")
    seed: int = _opt(42, "random seed for sampling, initialisation and batching")
    epochs: int | None = _opt(None, "maximum training epochs")
    patience: int = _opt(5, "stop after this many epochs without validation HR@10 gain")
    max_minutes: float | None = _opt(None, "stop training after this wall time; best epoch kept")
    batch_size: int | None = _opt(None, "training batch size")
    optimizer: str | None = _opt(None, "local optimiser", ("adam", "sgd"))
    lr: float | None = _opt(None, "learning rate (the model's default for the chosen optimizer and mode if unset)")
    weight_decay: float | None = _opt(None, "L2 penalty")
    dim: int | None = _opt(None, "embedding / hidden size")
    dropout: float | None = _opt(None, "dropout on embeddings and hidden states")
    vocab_size: int | None = _opt(
        None, "lstm, mlp: model only the N most popular items (by the DP popularity prior), the rest as one "
        "class; 0 = every item",
    )
    max_len: int | None = _opt(None, "longest history a sequential model reads, most recent items")
    attribute_buckets: int | None = _opt(
        None, "lstm, mlp: also read and score items through their catalog attributes (brand, category, price band: "
        "public, no privacy cost), hashed into this many embedding buckets; the default applies in every mode when the "
        "data or its catalog has item attributes (Beauty does); 0 = off",
    )
    neighbors: int = _opt(100, "itemknn: neighbours kept per item; userknn: neighbours per user")
    similarity: str = _opt(
        "cosine", "itemknn: cosine or adjusted-cosine; userknn: cosine or pearson", ("cosine", "adjusted-cosine", "pearson")
    )
    min_interactions: int = _opt(3, "users with fewer interactions cannot be split (>= 3)")
    short_users: str = _opt(
        "drop", "what to do with users below --min-interactions", ("drop", "error")
    )
    mask_history: bool = _opt(True, "exclude already-seen items from ranking (S3-Rec protocol)")
    threads: int | None = _opt(None, "torch CPU threads (all cores if unset)")
    release_gate: bool = _opt(
        True, "audit the final model (fedrec audit's default bounds) and write DIR/release/ only when it passes; "
        "a blocked model exits with status 3",
    )
    # Differential privacy (Opacus DP-SGD; `pop`: Gaussian noise on the item counts).
    dp: str = _opt(
        "off", "privacy mode: off, or who adds the DP noise: local (each store, DP-SGD; --dp alone; fedrec train: on the "
        "pooled data; pop: noisy counts), central (the server), distributed (stores, in shares of one DP-SGD run); "
        "fedrec.privacy.modes, docs/privacy.md",
    )
    noise_multiplier: float | None = _opt(None, "DP noise std / clipping norm (or give --target-epsilon)")
    target_epsilon: float | None = _opt(None, "DP: derive the noise so the planned training ends at this epsilon")
    delta: float | None = _opt(None, "DP delta (default min(1e-5, 1 / (10 x records)))")
    max_grad_norm: float = _opt(1.0, "DP: per-sample (per-user) gradient clipping norm")
    max_epsilon: float | None = _opt(None, "DP: a client refuses any round that would take it past this epsilon")
    lifetime_epsilon: float | None = _opt(
        None, "DP: a store refuses, before it trains, a run whose planned spend would take its customers past this "
        "epsilon over every run that kept its state folder (the lifetime ledger)",
    )
    prior_noise: float | None = _opt(
        None, "DP lstm, mlp: noise multiplier of the one-off noisy popularity release that initialises the "
        "item bias, accounted with the training (0: no prior)",
    )
    accountant: str = _opt("rdp", "DP accountant (Opacus)", ("rdp", "prv"))

    def __post_init__(self) -> None:
        if isinstance(self.dp, bool) or str(self.dp).lower() in LEGACY_DP:  # a config from before modes had names
            object.__setattr__(self, "dp", LEGACY_DP[str(self.dp).lower()])
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ConfigError(
                    f"{f.name}={value!r} is not one of {', '.join(choices)}; pick one of those."
                )
        positive = ("epochs", "batch_size", "dim", "max_len", "neighbors", "threads")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be a positive integer.")
        if self.patience < 0:
            raise ConfigError(f"patience={self.patience} must be >= 0.")
        if self.lr is not None and not 0 < self.lr < float("inf"):
            raise ConfigError(f"lr={self.lr} must be a finite number > 0.")
        if self.weight_decay is not None and not 0 <= self.weight_decay < float("inf"):
            raise ConfigError(f"weight_decay={self.weight_decay} must be a finite number >= 0.")
        if self.max_minutes is not None and not 0 < self.max_minutes < float("inf"):
            raise ConfigError(f"max_minutes={self.max_minutes} must be a finite number > 0.")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1).")
        for name in ("noise_multiplier", "target_epsilon", "max_epsilon", "lifetime_epsilon"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                raise ConfigError(f"{name}={value} must be a finite number > 0.")
        if self.prior_noise is not None and not 0 <= self.prior_noise < float("inf"):
            raise ConfigError(f"prior_noise={self.prior_noise} must be a finite number > 0 (0: no prior).")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ConfigError(f"delta={self.delta} must be in (0, 1); 1e-5 or 1 / (10 x records) is usual.")
        if not 0 < self.max_grad_norm < float("inf"):
            raise ConfigError(f"max_grad_norm={self.max_grad_norm} must be a finite number > 0.")
        # The DP options' cross-field checks are the mode's (fedrec.privacy.modes), run before anything starts.
        if self.attribute_buckets is not None and self.attribute_buckets < 0:
            raise ConfigError(f"attribute_buckets={self.attribute_buckets} must be >= 0 (0 = no attributes).")
        if self.attribute_buckets and self.model not in SEQUENCE_MODELS:
            raise ConfigError(f"attribute_buckets is an option of {' and '.join(SEQUENCE_MODELS)}; drop --attribute-buckets "
                              f"for --model {self.model}.")
        if self.vocab_size is not None and self.vocab_size < 0:
            raise ConfigError(f"vocab_size={self.vocab_size} must be >= 0 (0 = every item).")
        if self.min_interactions < 3:
            raise ConfigError(
                f"min_interactions={self.min_interactions}: leave-one-out needs at least 3 "
                "interactions per user (train, validation, test); use 3 or more."
            )

    def with_model_defaults(self, defaults: Mapping[str, Any]) -> "TrainConfig":
        """Fill unset (None) fields from a model's defaults; explicit values win."""
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **filled)


DEFAULT_STORES = 10  # simulated stores when the data has no store_id column and none are asked for


@dataclass(frozen=True)
class FederationConfig(_Mapped):
    """How the federation runs: who the clients are, how many rounds, what is sampled.
    ``None`` means "the recipe's default" for the model and mode (fedrec.federation.recipes)."""

    partition: str = _opt("store", "clients are stores (cross-silo) or single users (cross-device)", ("store", "user"))
    num_clients: int | None = _opt(None, f"number of stores (default {DEFAULT_STORES}; the store count when the data has store_id)")
    alpha: float = _opt(0.5, "Dirichlet concentration of the non-IID store split (smaller = more skewed)")
    rounds: int | None = _opt(None, "federated rounds (--dp distributed: one DP-SGD step each; by default the model's DP "
                                    "epochs of steps: 220 on Beauty)")
    fraction: float | None = _opt(None, "share of clients sampled per round (--dp central on device shards: each "
                                        "device's Poisson sampling rate q, drawn in secret)")
    local_epochs: int | None = _opt(None, "epochs each sampled client trains per round")
    strategy: str | None = _opt(
        None, "server aggregation: FedAvg, FedAvg with server momentum, or server-side Adam (Reddi et al. 2021)",
        ("fedavg", "fedavgm", "fedadam"),
    )
    server_lr: float | None = _opt(None, "fedavgm/fedadam: server learning rate on the averaged update")
    server_momentum: float | None = _opt(None, "fedavgm: server momentum (0 = plain FedAvg); fedadam: beta_1")
    client_lr_decay: float | None = _opt(None, "client learning rate of round r is lr * client_lr_decay ** (r - 1)")
    keep_optimizer_state: bool = _opt(
        False, "clients keep their optimizer's state (Adam's moments) on their own disk across rounds, so a client "
        "Adam continues instead of restarting every round (not under --dp)",
    )
    drift_correction: str = _opt(
        "auto", "auto: the recipe's choice (shown below); mime: MimeLite, clients take Adam steps with the server's Adam moments, frozen during the round "
        "(--optimizer adam; lstm; not under DP); scaffold: SCAFFOLD control variates correct each client's SGD steps "
        "(plain SGD, not under DP)", ("auto", "none", "scaffold", "mime"),
    )
    mime_momentum: float = _opt(
        0.0, "mime: beta_1 of the server's Adam moments, per round (0: clients step with Adam's per-coordinate scale "
        "only; 0.9: MimeLite's frozen momentum too)",
    )
    dp_dropout: float = _opt(
        0.1, "distributed dp: share of a round's stores that may drop out; each store's noise share is sized so the "
        "fewest stores that can complete a round still carry the full noise",
    )
    device_shards: int | None = _opt(
        None, "simulate --partition user: virtual SuperNodes that each host a shard of the devices and train its sampled "
        "devices one after another, with the code a device runs (a simulation device, never a deployment: a shard sums "
        "its devices in clear); 0: one SuperNode per device (docs/devices.md)",
    )
    eval_every: int | None = _opt(None, "server-side evaluation every this many rounds (and after the last)")
    audit_holdout: float = _opt(
        0.0, "share of each store's customers kept out of training (and of the DP accounting), drawn at random per "
        "customer, so `fedrec privacy-audit` can test membership inference against them (e.g. 0.1)",
    )
    state_dir: str | None = _opt(
        None, "simulate: folder of the stores' private state and privacy ledgers (default RUN/client_state); give "
        "the same folder to later runs and each store's lifetime epsilon continues",
    )
    touched_rows: bool | None = _opt(None, "average item-embedding rows only over the clients that changed them (off under --secagg)")
    secagg: bool | None = _opt(
        None, "secure aggregation (Flower's SecAgg+): stores send masked updates and the server learns only their "
        "weighted sum (docs/privacy.md); not with touched-rows, Mime, SCAFFOLD or --central-dp (default: on under "
        "--dp distributed, else off)",
    )
    secagg_shares: int = _opt(
        0, "secagg: neighbours each store shares its masking keys with, itself included (odd; 0: every sampled store "
        "up to 11, beyond that 2*ceil(log2 n)+1)",
    )
    secagg_clip: float = _opt(
        8.0, "secagg: largest change of one parameter in one round (times the store's weight / max weight) that "
        "SecAgg+ carries; larger ones are clipped and counted (Beauty, round 1: MF up to 3.7, LSTM 0.9)",
    )
    secagg_max_weight: int | None = _opt(
        None, "secagg: most training examples any store has (weights are examples / this); none: each round's "
        "largest sampled store, asked before its first round",
    )
    min_clients: int = _opt(1, "fewest successful client replies for a round to update the model")
    min_available: int = _opt(1, "clients that must be connected before a round samples (simulate: all)")
    round_timeout: float = _opt(3600.0, "seconds the server waits for replies in a round")
    eval_users: int | None = _opt(None, "server-side evaluation users per round (0 = all)")
    item_catalog: str | None = _opt(None, "data whose items define the shared item ids (default: --data)")
    fraction_evaluate: float | None = _opt(None, "share of clients that also evaluate on their own test items")
    server_eval: bool | None = _opt(None, "evaluate the global model at the server on --data each round")
    run_dir: str = _opt("runs/federated", "run directory (flwr run): metrics.json, checkpoints/, client_state/")
    resume: bool = _opt(False, "continue the run in run_dir from its last checkpoint")
    keep_checkpoints: int = _opt(
        10, "per-round checkpoints kept: the last this many rounds' and the reported round's (a 1,200-round device run "
            "kept every one: 26 GB); 0 = all (fedrec privacy-audit --round R needs round R - 1's)",
    )

    def __post_init__(self) -> None:
        if self.keep_checkpoints < 0:
            raise ConfigError(f"keep_checkpoints={self.keep_checkpoints} must be >= 0 (0 keeps every round's).")
        if self.device_shards is not None and self.device_shards < 0:
            raise ConfigError(f"device_shards={self.device_shards} must be >= 0 (0: one SuperNode per device).")
        if self.num_clients is not None and self.num_clients < 1:
            raise ConfigError(f"num_clients={self.num_clients} must be >= 1.")
        for name in ("rounds", "local_epochs", "min_clients", "min_available", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be >= 1.")
        if self.fraction_evaluate is not None and not 0.0 <= self.fraction_evaluate <= 1.0:
            raise ConfigError(f"fraction_evaluate={self.fraction_evaluate} must be in [0, 1].")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"fraction={self.fraction} must be in (0, 1]; e.g. 0.01 samples 1% of clients.")
        if not 0.0 < self.alpha < float("inf"):
            raise ConfigError(f"alpha={self.alpha} must be a finite number > 0.")
        if self.round_timeout <= 0:
            raise ConfigError(f"round_timeout={self.round_timeout} must be > 0.")
        if self.eval_users is not None and self.eval_users < 0:
            raise ConfigError(f"eval_users={self.eval_users} must be >= 0 (0 = all users).")
        if self.server_lr is not None and not 0.0 < self.server_lr < float("inf"):
            raise ConfigError(f"server_lr={self.server_lr} must be a finite number > 0.")
        if self.server_momentum is not None and not 0.0 <= self.server_momentum < 1.0:
            raise ConfigError(f"server_momentum={self.server_momentum} must be in [0, 1).")
        if self.strategy is not None and self.strategy not in ("fedavg", "fedavgm", "fedadam"):
            raise ConfigError(f"strategy={self.strategy!r} is not one of fedavg, fedavgm, fedadam.")
        if self.client_lr_decay is not None and not 0.0 < self.client_lr_decay <= 1.0:
            raise ConfigError(f"client_lr_decay={self.client_lr_decay} must be in (0, 1]; 1 keeps the learning rate fixed.")
        if self.drift_correction not in ("auto", "none", "scaffold", "mime"):
            raise ConfigError(f"drift_correction={self.drift_correction!r} is not one of auto, none, scaffold, mime.")
        if not 0.0 <= self.mime_momentum < 1.0:
            raise ConfigError(f"mime_momentum={self.mime_momentum} must be in [0, 1).")
        if self.secagg_shares != 0 and (self.secagg_shares < 3 or self.secagg_shares % 2 == 0):
            raise ConfigError(
                f"secagg_shares={self.secagg_shares} must be odd and >= 3 (or 0 for the default): with an even count "
                "Flower's secaggplus_mod fails on every client (it builds one neighbour more than it makes shares)."
            )
        if not 0.0 < self.secagg_clip < float("inf"):
            raise ConfigError(f"secagg_clip={self.secagg_clip} must be a finite number > 0.")
        if self.secagg_max_weight is not None and self.secagg_max_weight < 1:
            raise ConfigError(f"secagg_max_weight={self.secagg_max_weight} must be >= 1.")
        if self.partition not in ("store", "user"):
            raise ConfigError(f"partition={self.partition!r} is not one of store, user.")
        if not 0.0 <= self.dp_dropout < 1.0:
            raise ConfigError(f"dp_dropout={self.dp_dropout} must be in [0, 1): the share of a round's stores that may drop out.")
        if not 0.0 <= self.audit_holdout <= 0.5:
            raise ConfigError(f"audit_holdout={self.audit_holdout} must be in [0, 0.5]: the share of customers kept out of "
                              "training for the membership-inference audit (0.1 is plenty on Beauty).")
        if self.audit_holdout and self.partition == "user":
            raise ConfigError("audit_holdout holds customers out of their store's training; with --partition user every "
                              "client is one customer, so use --partition store (or drop --audit-holdout).")


# Before privacy modes had names, three booleans said where the noise is added; a config
# written then (a checkpoint's, a pyproject's) still reads: their mode replaces them.
LEGACY_MODE_KEYS = {"central_dp": "central", "distributed_dp": "distributed"}


def from_mapping(cls: type, values: Mapping[str, Any]) -> Any:
    """Build a config dataclass from snake_case or kebab-case keys; unknown keys are errors."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    parsed: dict[str, Any] = {}
    for raw_key, raw_value in values.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise ConfigError(
                f"unknown config key {raw_key!r}; known keys: "
                f"{', '.join(sorted(k.replace('_', '-') for k in known))}."
            )
        parsed[key] = coerce(raw_value, field_type(known[key], cls), key)
    return cls(**parsed)


def split_mapping(values: Mapping[str, Any]) -> tuple[TrainConfig, FederationConfig]:
    """One flat run config (Flower's [tool.flwr.app.config]) -> the two typed configs."""
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    fed_keys = {f.name for f in dataclasses.fields(FederationConfig)}
    train, fed, unknown = {}, {}, []
    values = dict(values)
    for key, mode in LEGACY_MODE_KEYS.items():
        for spelled in (key, key.replace("_", "-")):
            if spelled in values and coerce(values.pop(spelled), (bool, False), key):
                values["dp"] = mode
    for key, value in values.items():
        name = key.replace("-", "_")
        if name in train_keys:
            train[name] = value
        elif name in fed_keys:
            fed[name] = value
        else:
            unknown.append(key)
    if unknown:
        known = sorted(k.replace("_", "-") for k in train_keys | fed_keys)
        raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(known)}.")
    return from_mapping(TrainConfig, train), from_mapping(FederationConfig, fed)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A config class's resolved annotations (resolving them is slow, and they never change:
    every federated message's config is read through them)."""
    return typing.get_type_hints(cls)


def field_type(f: dataclasses.Field, cls: type = TrainConfig) -> tuple[type, bool]:
    """(base type, optional?) of a config field, from its annotation string."""
    hint = _type_hints(cls)[f.name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        base = next(a for a in args if a is not type(None))
        return base, True
    return hint, False


def coerce(value: Any, kind: tuple[type, bool], name: str) -> Any:
    """Turn a CLI string or run-config value into the field's type, or say why not."""
    base, optional = kind
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise ConfigError(f"{name} needs a value of type {base.__name__}.")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return base(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name}={value!r} is not a valid {base.__name__}; give e.g. "
            f"{name.replace('_', '-')}={base(1) if base is not bool else 'true'}."
        ) from None


@dataclass(frozen=True)
class AuditConfig(_Mapped):
    """What ``fedrec audit`` measures and the bounds a model must meet to be released.

    Bounds are inclusive, TFX-style; ``None`` leaves a metric unbounded (reported, not gated).
    The defaults were calibrated on Beauty runs (docs/audit.md, "Release gate"): a normally
    trained model passes, the popularity recommender is blocked on popularity bias.
    """

    top_k: int = _opt(10, "length of the audited top-k lists (the HR@k of the checks)")
    min_group_size: int = _opt(100, "groups with fewer users are suppressed: no value, not gated")
    n_boot: int = _opt(200, "Poisson bootstrap replicates for the group intervals")
    seed: int = _opt(0, "bootstrap seed (the weights are a function of seed and customer id)")
    min_hr_gain: float = _opt(
        0.002, "the model's test HR@k must exceed the popularity baseline's (same training counts) by at least this "
        "(always checked)",
    )
    max_arp_ratio: float | None = _opt(
        6.0, "popularity bias: mean popularity of recommended items / of consumed items at most this (none: unbounded)",
    )
    min_coverage: float | None = _opt(0.01, "popularity bias: share of catalog items recommended to someone, at least this (none: unbounded)")
    min_group_ratio: float | None = _opt(
        0.5, "group utility: worst-to-best HR@k ratio over the reported groups of each grouping, at least this (none: unbounded)",
    )
    max_hr_drop: float | None = _opt(
        0.005, "with --baseline: HR@k may fall at most this below the baseline release's (none: unbounded)",
    )
    max_group_ratio_drop: float | None = _opt(
        0.1, "with --baseline: each grouping's worst-to-best HR@k ratio may fall at most this (none: unbounded)",
    )
    group_evidence: str = _opt(
        "interval", "interval: block a grouping only when even the largest ratio the worst and best groups' 95 percent "
        "(Wilson) intervals allow is below --min-group-ratio (the gap is real, not noise); point: gate the point estimate",
        ("interval", "point"),
    )
    allow_unmeasured: bool = _opt(
        False, "let a check whose value cannot be measured (e.g. popularity under DP without a released prior) pass; "
        "the card and the audit record that it passed unmeasured",
    )

    def __post_init__(self) -> None:
        if self.group_evidence not in ("interval", "point"):
            raise ConfigError(f"group_evidence={self.group_evidence!r} is not one of interval, point.")
        for name in ("top_k", "min_group_size", "n_boot"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be a positive integer.")
        if not -1.0 <= self.min_hr_gain <= 1.0:
            raise ConfigError(f"min_hr_gain={self.min_hr_gain} is a difference of hit rates; give a value in [-1, 1].")
        if self.max_arp_ratio is not None and not 0.0 < self.max_arp_ratio < float("inf"):
            raise ConfigError(f"max_arp_ratio={self.max_arp_ratio} must be a finite number > 0 (or none to leave it unbounded).")
        for name in ("min_coverage", "min_group_ratio", "max_hr_drop", "max_group_ratio_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value} is a share; give a value in [0, 1] (or none).")
