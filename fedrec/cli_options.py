"""The options of ``fedrec train`` and ``fedrec simulate``: the decisions a user makes, in
groups, on ``--help``; every other config field is an experiment knob, still a flag but shown
only by ``--help-all``, and settable in ``--config FILE`` (fedrec.config_file).

Flags are generated from :class:`fedrec.config.TrainConfig` and
:class:`~fedrec.config.FederationConfig`, one per field.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Callable

from fedrec.config import FederationConfig, TrainConfig, field_type
from fedrec.config_file import LEGACY_MODE_KEYS
from fedrec.federation.client import FEDERATED_MODELS
from fedrec.federation.recipes import describe_default
from fedrec.privacy.modes import mode_names, privacy_mode

# Run-level fields of FederationConfig that the CLI sets through --out / --resume instead.
CLI_MANAGED = {"run_dir", "resume"}
# What a user decides, by group, in the order --help shows them. --out, --resume and
# --config join "output"; the rest of the config fields are experiment knobs.
TRAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "what to train": ("model", "data"),
    "privacy": ("dp", "noise_multiplier", "target_epsilon"),
    "output": ("release_gate",),
}
SIMULATE_GROUPS: dict[str, tuple[str, ...]] = {
    "what to train": ("model", "data"),
    "federation": ("partition", "num_clients", "rounds"),
    "privacy": ("dp", "noise_multiplier", "target_epsilon", "lifetime_epsilon", "secagg"),
    "output": ("release_gate",),
}
KNOBS = {TrainConfig: "training knobs (also keys of --config FILE)",
         FederationConfig: "federation knobs (also keys of --config FILE)"}
# --help's one-line version of a field's help; --help-all prints the full text and the
# per-model, per-mode defaults.
SHORT_HELP = {
    "rounds": "federated rounds (default: the model's and mode's recipe, e.g. lstm 100, --dp 10; --help-all)",
    "lifetime_epsilon": "DP: a store refuses a run that would take its customers past this epsilon, all runs "
                        "together",
    "secagg": "secure aggregation (SecAgg+): the server learns only the sum of the stores' updates (default: on "
              "under --dp distributed)",
    "release_gate": "audit the final model; write DIR/release/ only when it passes, else exit status 3 (default: on)",
}


class Parser(argparse.ArgumentParser):
    """An error says what is wrong and where the help is, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the options)\n")


class HelpAll(argparse.Action):
    """``--help-all``: the command's help with every experiment knob, then exit."""

    def __init__(self, option_strings: list[str], dest: str, *, fill: Callable[..., None], **kwargs) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)
        self.fill = fill

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        full = Parser(prog=parser.prog, description=parser.description)
        self.fill(full, show_all=True)
        full.print_help()
        parser.exit()


def fill_train(parser: argparse.ArgumentParser, *, show_all: bool = False) -> None:
    """fedrec train's options (``show_all``: the knobs' help too)."""
    groups = add_run_options(parser, (TrainConfig,), TRAIN_GROUPS, fill=fill_train, show_all=show_all)
    groups["output"].add_argument("--out", required=True, type=Path, metavar="DIR",
                                  help="run directory for metrics.json and model.pt")
    add_config_file_flag(groups["output"])


def fill_simulate(parser: argparse.ArgumentParser, *, show_all: bool = False) -> None:
    """fedrec simulate's options (``show_all``: the knobs' help too)."""
    groups = add_run_options(parser, (TrainConfig, FederationConfig), SIMULATE_GROUPS, fill=fill_simulate,
                             show_all=show_all, models=FEDERATED_MODELS)
    shown = None if show_all else argparse.SUPPRESS
    where = groups["output"].add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="DIR",
                       help="new run directory: metrics.json, checkpoints/, client_state/, model.pt")
    where.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    add_config_file_flag(groups["output"])
    groups["output"].add_argument(
        "--ray-address", metavar="HOST:PORT", help="run the clients on the Ray cluster whose head is at HOST:PORT, "
        "not on a Ray started here (docs/deployment.md)",
    )
    private = parser.add_argument_group("anonymization (--data is then a raw shop log with a store column)")
    private.add_argument("--anonymize-key", type=Path, metavar="KEYFILE",
                         help="each store anonymizes its own rows with this key (fedrec keys) before training")
    private.add_argument("--k-anonymity", type=int, default=5, metavar="K", help=shown or "customers per quasi-identifier class")
    private.add_argument("--link-stores", action="store_true", help=shown or "one pseudonym per customer across stores")
    private.add_argument("--schema", type=Path, metavar="FILE", help=shown or "column roles, JSON (docs/anonymization.md)")
    floor = parser.add_argument_group("the simulated stores' own floor (a deployed store sets it in its node config)")
    floor.add_argument("--store-min-sum-stores", type=int, default=0, metavar="M", help=shown or
                       "each store refuses a round whose SecAgg+ sum could be unmasked over fewer than M stores")
    floor.add_argument("--store-min-noise", type=float, default=0.0, metavar="SIGMA", help=shown or
                       "each store refuses a round that trains with a noise multiplier below SIGMA")


def add_config_file_flag(group) -> None:
    group.add_argument("--config", dest="config_file", type=Path, metavar="FILE.toml",
                       help="experiment knobs from a TOML file: the keys of [tool.flwr.app.config] (flags win; "
                       "docs/configuration.md)")


def add_run_options(parser: argparse.ArgumentParser, classes: tuple[type, ...], groups: dict[str, tuple[str, ...]],
                    *, fill: Callable[..., None], show_all: bool,
                    models: tuple[str, ...] | None = None) -> dict[str, argparse._ArgumentGroup]:
    """--help-all, a flag per config field: ``groups``' fields under their titles, the others
    as knobs (hidden unless ``show_all``); ``models``: the --model choices the command accepts
    (default: every model). Returns the titled groups."""
    parser.add_argument("--help-all", action=HelpAll, fill=fill,
                        help="also list the experiment knobs (every config field)")
    titled = {title: parser.add_argument_group(title) for title in groups}
    group_of = {name: titled[title] for title, names in groups.items() for name in names}
    for cls in classes:
        knobs = parser.add_argument_group(KNOBS[cls]) if show_all else parser
        for f in dataclasses.fields(cls):
            if f.name in CLI_MANAGED or f.name in LEGACY_MODE_KEYS:  # the mode is --dp MODE
                continue
            target = group_of.get(f.name, knobs)
            if f.name == "dp":
                add_dp_mode_flag(target)
            else:
                add_field_flag(target, f, cls, shown=show_all or f.name in group_of,
                               short=None if show_all else SHORT_HELP.get(f.name),
                               choices=models if f.name == "model" else None)
    return titled


def add_field_flag(parser, f: dataclasses.Field, cls: type, *, shown: bool = True, short: str | None = None,
                   choices: tuple[str, ...] | None = None) -> None:
    """The flag of one config field; its help (or ``short``) names the default, per model and
    mode when the field is unset."""
    flag = "--" + f.name.replace("_", "-")
    base, _ = field_type(f, cls)
    default = describe_default(f.name) if f.default in (None, "auto") else f.default
    help_text = short or f.metadata["help"] + ("" if default is None else f" (default: {default})")
    help_text = help_text if shown else argparse.SUPPRESS
    if base is bool:
        parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    else:
        choices = choices or f.metadata.get("choices")  # the command's own subset where it takes fewer
        parser.add_argument(flag, dest=f.name, default=None, choices=choices,
                            metavar=None if choices else base.__name__.upper(), help=help_text)


def add_config_flags(parser: argparse.ArgumentParser, cls: type = TrainConfig, *, skip: tuple[str, ...] = ()) -> None:
    """A shown flag for every field of ``cls`` (fedrec audit's bounds)."""
    for f in dataclasses.fields(cls):
        if f.name not in CLI_MANAGED and f.name not in skip:
            add_field_flag(parser, f, cls)


def add_dp_mode_flag(parser) -> None:
    """The one --dp MODE flag of train and simulate (docs/privacy.md, "Privacy modes"): --dp
    alone is local, --no-dp is off, --central-dp is --dp central; args.dp is the mode's name."""
    parser.add_argument(
        "--dp", dest="dp", nargs="?", const="local", default=None, choices=mode_names(), metavar="MODE",
        help="who adds the DP noise (--dp alone: local; fedrec train: off or local): "
        + "; ".join(f"{name}: {privacy_mode(name).summary}" for name in mode_names()),
    )
    parser.add_argument("--central-dp", dest="dp", action="store_const", const="central", help=argparse.SUPPRESS)
    parser.add_argument("--no-dp", dest="dp", action="store_const", const="off", help=argparse.SUPPRESS)


def given_flags(args: argparse.Namespace, *classes: type) -> list[str]:
    """The config fields the command line gave, by name."""
    return [
        f.name for cls in classes for f in dataclasses.fields(cls)
        if f.name not in CLI_MANAGED and getattr(args, f.name, None) is not None
    ]


def help_all(command: str) -> str:
    """``fedrec COMMAND --help-all``'s text (train or simulate)."""
    fill = {"train": fill_train, "simulate": fill_simulate}[command]
    parser = Parser(prog=f"fedrec {command}")
    fill(parser, show_all=True)
    return parser.format_help()
