"""A run's settings from a TOML file (``fedrec train|simulate --config FILE``), and where each
value of a resolved run came from.

The file holds the keys of ``[tool.flwr.app.config]`` in pyproject.toml (kebab-case, the
names of :class:`~fedrec.config.TrainConfig` and :class:`~fedrec.config.FederationConfig`),
either at its top level or under that table, so one description of a run serves
``flwr run`` and the command line. Flags given on the command line win over the file.

Every run's metrics.json keeps, beside its resolved ``config``, ``config_sources``: for each
value, ``default`` (the field's default), ``recipe`` (unset, filled by the model's and mode's
recipe), ``config-file`` or ``flag`` (given on the command line, or as an argument of
``fedrec.train`` / ``fedrec.simulate``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from fedrec.config import FederationConfig, TrainConfig, coerce, field_type
from fedrec.errors import ConfigError
from fedrec.rundir import RunDir, write_json

SOURCES = ("default", "recipe", "config-file", "flag")
FEDERATION_PREFIX = "federation."  # how a federated run's metrics.json names FederationConfig's fields
# Before privacy modes had names, two booleans beside dp said where the noise is added; run
# configs still carry them (fedrec.config.split_mapping reads them into the mode).
LEGACY_MODE_KEYS = ("central_dp", "distributed_dp")
RUN_FOLDER_KEYS = ("run_dir", "resume")  # the command line's --out / --resume name the run folder


def read_config_file(path: str | Path, *, federated: bool) -> dict[str, Any]:
    """The settings a config file gives, by field name (snake_case), typed. A value at its
    field's default (``"none"`` included: unset, the recipe decides) is left out, so a copy
    of pyproject's whole table sets only what it changes. ``federated=False`` (fedrec train)
    refuses any other federation setting, which would otherwise be ignored."""
    path = Path(path)
    table = _table(path)
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    federation_fields = {f.name: f for f in dataclasses.fields(FederationConfig)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        if name not in train_fields and name not in federation_fields and name not in LEGACY_MODE_KEYS:
            known = sorted({*train_fields, *federation_fields, *LEGACY_MODE_KEYS} - set(RUN_FOLDER_KEYS))
            raise ConfigError(f"{path}: unknown key {key!r}; the known keys are those of [tool.flwr.app.config] in "
                              f"pyproject.toml: {', '.join(k.replace('_', '-') for k in known)}.")
        if name in RUN_FOLDER_KEYS:
            if name == "resume" and _typed(path, raw, (bool, False), name):
                raise ConfigError(f"{path}: resume = true; continue a run with --resume DIR on the command line.")
            continue  # the command line's --out or --resume names the run folder (it wins, as every flag does)
        if name == "dp":  # a mode name, or a bool from before modes had names: the config classes read both
            values[name] = raw
            continue
        owner = TrainConfig if name in train_fields else FederationConfig
        field = train_fields.get(name) or federation_fields.get(name)
        value = _typed(path, raw, field_type(field, owner) if field else (bool, False), name)
        if value is None or value == (field.default if field else False):
            continue  # as if absent: a copy of pyproject's whole table sets only what it changes
        if not federated and owner is FederationConfig:
            raise ConfigError(f"{path}: {key} = {raw!r} is a federation setting; fedrec train trains one model "
                              "centrally. Drop it from the file, or run fedrec simulate.")
        values[name] = value
    return values


def _table(path: Path) -> dict[str, Any]:
    """The file's flat table of keys: the top level, or its [tool.flwr.app.config]."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; give the path of a TOML file.") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML ({err}); keys are written key = value, strings in "
                          'quotes (model = "lstm").') from None
    tool = document.get("tool")
    if isinstance(tool, dict):
        table = tool.get("flwr", {}).get("app", {}).get("config")
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path} has a [tool] table but no [tool.flwr.app.config]; put the keys "
                              "there or at the top of the file.")
        return table
    nested = [key for key, value in document.items() if isinstance(value, dict)]
    if nested:
        raise ConfigError(f"config file {path}: [{nested[0]}] is not a table fedrec reads; put the keys at the top "
                          "of the file or under [tool.flwr.app.config].")
    return document


def _typed(path: Path, raw: Any, kind: tuple[type, bool], name: str) -> Any:
    try:
        return coerce(raw, kind, name)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def merged_options(file_values: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """The file's settings under the flags': a flag wins over the file. A --dp flag also wins
    over the file's legacy mode booleans (central-dp = true would otherwise name a mode)."""
    if "dp" in flags:
        file_values = {k: v for k, v in file_values.items() if k not in LEGACY_MODE_KEYS}
    return {**file_values, **flags}


def given_names(keys: Iterable[str]) -> set[str]:
    """Field names given as ``keys`` (either casing), with what a mode key implies: --dp MODE
    sets the legacy mode booleans too, and a legacy boolean names the mode."""
    names = {key.replace("-", "_") for key in keys}
    if names & set(LEGACY_MODE_KEYS):
        names.add("dp")
    if "dp" in names:
        names.update(LEGACY_MODE_KEYS)
    return names


def config_sources(flags: Iterable[str], file_keys: Iterable[str], defaults: Mapping[str, Any],
                   resolved: Mapping[str, Any]) -> dict[str, str]:
    """Where each resolved value came from: ``flag`` (wins over the file), ``config-file``,
    ``recipe`` (not given, and resolution changed it from its field default) or ``default``.
    Keys are those of ``resolved``; ``flags`` and ``file_keys`` name them the same way."""
    flags, file_keys = set(flags), set(file_keys)
    sources = {}
    for key, value in resolved.items():
        if key in flags:
            sources[key] = "flag"
        elif key in file_keys:
            sources[key] = "config-file"
        elif key in defaults and value == defaults[key]:
            sources[key] = "default"
        else:
            sources[key] = "recipe"
    return sources


def document_keys(names: Iterable[str], *, federated: bool) -> set[str]:
    """Field names as metrics.json's ``config`` names them (FederationConfig's prefixed in a federated run)."""
    federation = {f.name for f in dataclasses.fields(FederationConfig)}
    return {FEDERATION_PREFIX + name if federated and name in federation else name for name in names}


def field_defaults(*, federated: bool) -> dict[str, Any]:
    """Each field's dataclass default, keyed as metrics.json's ``config`` keys it."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    if federated:
        defaults.update({FEDERATION_PREFIX + f.name: f.default for f in dataclasses.fields(FederationConfig)})
    return defaults


def record_config_sources(run_dir: str | Path, *, flags: Iterable[str], file_keys: Iterable[str], federated: bool,
                          earlier: Mapping[str, str] | None = None) -> dict[str, str]:
    """Add ``config_sources`` beside the resolved ``config`` of the run's metrics.json; returns
    it. A resumed run keeps the ``earlier`` sources of the run it continues; its flags win."""
    run = RunDir(Path(run_dir))
    document = run.read_metrics()
    flags = document_keys(given_names(flags), federated=federated)
    sources = config_sources(flags, document_keys(given_names(file_keys), federated=federated),
                             field_defaults(federated=federated), document["config"])
    if earlier is not None:
        sources.update({key: source for key, source in earlier.items() if key in sources and key not in flags})
    write_json(run.metrics, {**document, "config_sources": sources})
    return sources
