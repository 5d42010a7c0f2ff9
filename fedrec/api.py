"""The Python API: what the ``fedrec`` command does, for notebooks and pipelines. The CLI is a
thin layer over these functions.

    import fedrec

    run = fedrec.simulate("runs/mf", model="mf", num_clients=10, rounds=5)
    run.metrics["hr@10"], run.reported_round
    model = run.load_model()
    model.recommend(users, histories, k=10)

Options are the config fields (``fedrec.config.TrainConfig`` and ``FederationConfig``) by
their Python names; unset ones take the model's measured recipe, as on the command line.
Errors are ``fedrec.errors.FedrecError`` subclasses whose message names the fix.

Progress (a line per round or epoch with the time left, Ray's start, the release gate) goes
through Python logging, logger ``fedrec``, as the command prints it. When the caller has
configured no logging, the long-running functions attach a stderr handler at INFO to that
logger alone (``fedrec.logs.attach_default_handler``); importing fedrec configures nothing.
Silence it with ``logging.getLogger("fedrec").setLevel(logging.WARNING)`` (bars go too), or
configure logging yourself first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrec import logs
from fedrec.config import TrainConfig, split_mapping
from fedrec.config_file import merged_options, read_config_file, record_config_sources
from fedrec.errors import ConfigError
from fedrec.rundir import write_json
from fedrec.models.base import Recommender
from fedrec.models.registry import load_model
from fedrec.rundir import RunDir

if TYPE_CHECKING:
    from fedrec.serving.export import Export

# Run-level fields that simulate() takes as arguments (out=, resume=), never as options.
RUN_ARGUMENTS = {"run_dir": "out", "resume": "resume"}
# serve: one worker per core measured best on 2 cores (docs/results.md, "Serving throughput"); at most 4.
SERVE_WORKERS = max(1, min(4, len(os.sched_getaffinity(0))))
# Centralised-training options with no meaning in a federation, and what rules there instead.
NOT_FEDERATED = {"epochs": ("rounds", "local_epochs"), "patience": ("rounds",), "max_minutes": ("rounds",),
                 "neighbors": ("model mf|lstm",), "similarity": ("model mf|lstm",)}


@dataclass(frozen=True)
class Run:
    """A finished run directory and what its metrics.json says."""

    path: Path
    document: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        run = RunDir(Path(path)).require()
        return cls(run.root, run.read_metrics())

    @property
    def metrics(self) -> dict[str, float]:
        """Test metrics (full ranking, leave-one-out): hr@k, ndcg@k, mrr."""
        return self.document["metrics"]

    @property
    def reported_round(self) -> int | None:
        """Federated runs: the round whose model and metrics the run reports."""
        return self.document.get("reported_round")

    @property
    def release_gate(self) -> dict[str, Any] | None:
        """The release gate's outcome (verdict, checks, audit and release paths); None when the
        run was not gated (release_gate=False, or no model)."""
        return self.document.get("release_gate")

    def load_model(self) -> Recommender:
        """The model the run reports (``model.pt``)."""
        return load_model(RunDir(self.path).model)

    def privacy_report(self) -> dict[str, Any]:
        return privacy_report(self.path)


def train(out: str | Path, *, config_file: str | Path | None = None, **options: Any) -> Run:
    """Centralised training (``fedrec train``) on all of ``options["data"]`` (default: the
    embedded Beauty data); writes ``out``/metrics.json, model.pt and privacy/. Options win
    over the ``config_file``'s (TOML, fedrec.config_file). Logs progress (module docstring)."""
    logs.attach_default_handler()  # before imports that load Opacus, which configures the root
    from fedrec.training.central import train_centrally

    file_values = {} if config_file is None else read_config_file(config_file, federated=False)
    flags, options = list(options), merged_options(file_values, options)
    if options.get("lifetime_epsilon") is not None:
        raise ConfigError("lifetime_epsilon caps a store's budget over federated runs that keep its state folder "
                          "(fedrec simulate --state-dir, a deployed SuperNode); fedrec train keeps no ledger between "
                          "runs: drop --lifetime-epsilon, or use --max-epsilon for this run.")
    config = TrainConfig.from_mapping(options)
    train_centrally(config, Path(out))
    record_config_sources(out, flags=flags, file_keys=file_values, federated=False)
    if config.release_gate:
        gate_run(out)
    return Run.open(out)


def gate_run(out: str | Path) -> None:
    """The release gate at the end of a run: audit with the default bounds, release on pass."""
    from fedrec.config import AuditConfig
    from fedrec.release.gatekeeper import audit_and_release

    audit_and_release(out, AuditConfig())  # records its outcome in metrics.json


def simulate(out: str | Path | None = None, *, resume: str | Path | None = None, config_file: str | Path | None = None,
             ray_address: str | None = None,
             anonymize_key: str | Path | None = None, k_anonymity: int = 5, link_stores: bool = False,
             schema: str | Path | None = None, store_min_sum_stores: int = 0, store_min_noise: float = 0.0,
             verbose: bool = False, **options: Any) -> Run:
    """A federated simulation (``fedrec simulate``) in this process: Flower's simulation
    engine on a local Ray, or on the cluster at ``ray_address`` (HOST:PORT of its head).
    ``resume=DIR`` continues a run from its last checkpoint (only ``rounds`` may change).
    With ``anonymize_key`` (a ``keys`` file), ``data`` is a raw shop log with a store
    column: each store anonymizes its own rows (``k_anonymity``, ``link_stores``,
    ``schema`` as for ``anonymize``) and only the anonymized copies reach training.
    ``store_min_sum_stores`` and ``store_min_noise`` are the simulated stores' own floor
    (fedrec.federation.store_floor): each refuses a round that asks for less. Options win over
    the ``config_file``'s (TOML, fedrec.config_file).

    Progress goes to the ``fedrec`` logger: Ray's start, a line per round with the time left,
    the release gate; on stderr at INFO unless the caller configured logging (silence:
    ``logging.getLogger("fedrec").setLevel(logging.WARNING)``). ``verbose`` also shows
    Flower's own INFO and DEBUG lines."""
    logs.attach_default_handler()  # before imports that load Opacus, which configures the root
    from fedrec.federation.simulation import StoreAnonymization, resume_configs
    from fedrec.federation.simulation import simulate as run_simulation

    file_values = {} if config_file is None else read_config_file(config_file, federated=True)
    flags, options = [*options, "run_dir", *(["resume"] if resume else [])], merged_options(file_values, options)
    for name, argument in RUN_ARGUMENTS.items():
        if name in options:
            raise ConfigError(f"{name} is set by simulate's {argument}= argument, not as an option.")
    if resume is not None:
        extra = [name for name in options if name != "rounds"]
        if extra:
            raise ConfigError(
                f"resume continues a run with its own settings; drop {', '.join(extra)} (only rounds may change, to extend the run)."
            )
        rounds = options.get("rounds")
        train_config, federation = resume_configs(Path(resume), None if rounds is None else int(rounds))
        out, before = resume, RunDir(Path(resume))
        earlier = before.read_metrics().get("config_sources") if before.metrics.exists() else None
    else:
        if out is None:
            raise ConfigError("simulate needs a run directory: out='runs/NAME' (or resume= an earlier one).")
        unused = [name for name in options if name in NOT_FEDERATED]
        if unused:
            raise ConfigError("; ".join(f"{name} is not used by simulate (use {' or '.join(NOT_FEDERATED[name])})"
                                        for name in unused) + ".")
        train_config, federation = split_mapping({**options, "run_dir": str(out)})
        earlier = None
    anonymization = None if anonymize_key is None else StoreAnonymization(
        Path(anonymize_key), k=k_anonymity, link_stores=link_stores, schema=None if schema is None else Path(schema))
    from fedrec.federation.store_floor import StoreFloor

    run_simulation(train_config, federation, verbose=verbose, ray_address=ray_address, anonymization=anonymization,
                   floor=StoreFloor(store_min_sum_stores, store_min_noise))
    if resume is None or earlier is not None:  # a run from before sources were kept: not known
        record_config_sources(out, flags=flags, file_keys=file_values, federated=True, earlier=earlier)
    return Run.open(out)


def audit(run_dir: str | Path, *, baseline: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """The release gate of a finished run (``fedrec audit``): one evaluation pass of its
    model, group utility, popularity bias and provider exposure, the gate (with change
    bounds against ``baseline``, an earlier run's release/ folder), and ``run_dir``/release/
    when it passes. Options are ``fedrec.config.AuditConfig`` fields (thresholds,
    min_group_size, top_k, n_boot, seed). Writes ``run_dir``/audit/ and returns audit.json's
    content with ``release`` (the folder, or None); its ``verdict`` is "passed" or "blocked"
    (a blocked model is not an error here: the CLI turns it into exit status 3). Logs progress."""
    logs.attach_default_handler()
    from fedrec.config import AuditConfig
    from fedrec.release.gatekeeper import audit_and_release

    return audit_and_release(Path(run_dir), AuditConfig.from_mapping(options), baseline=baseline)


def release(run_dir: str | Path, *, override_reason: str) -> dict[str, Any]:
    """Release a run's model although its audit blocked it (``fedrec release --override-reason``):
    writes ``run_dir``/release/ with the reason, user and time in the card and verdict, and
    appends them to ``run_dir``/audit/overrides.jsonl. Returns that record."""
    from fedrec.release.gatekeeper import override_release

    return override_release(Path(run_dir), override_reason)


def serve(release_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8080,
          api_key_file: str | Path | None = None, workers: int = SERVE_WORKERS, torch_threads: int | None = 1) -> None:
    """Serve a release (``fedrec serve``) until interrupted: POST /recommend, GET
    /items/{id}/similar, /model, health and /metrics; a folder that is not a passed (or
    overridden) release with intact checksums is refused before a port is bound."""
    from fedrec.serving import serve as run_server

    run_server(Path(release_dir), host=host, port=port, api_key_file=api_key_file, workers=workers, torch_threads=torch_threads)


def export(release_dir: str | Path, out: str | Path) -> "Export":
    """A release's lstm or mlp scorer as ONNX (``fedrec export``), for shops whose stack is not
    Python: ``out``/model.onnx with items.csv (dense id -> the shop's item id, and the catalog),
    popularity.json and metadata.json; docs/export.md. Needs ``pip install "fedrec[export]"``."""
    from fedrec.serving.export import export as export_scorer

    return export_scorer(release_dir, out)


def privacy_report(run_dir: str | Path) -> dict[str, Any]:
    """Write ``run_dir``/privacy/report.json, report.md and plots from the run's ledger (a run
    without DP gets a report that says so); returns report.json's content."""
    from fedrec.privacy.report import write_privacy_report

    run = RunDir(Path(run_dir)).require(or_privacy=True)
    return json.loads(write_privacy_report(run.root).read_text(encoding="utf-8"))


def privacy_audit(run_dir: str | Path, *, round_number: int | None = None, seed: int = 0, leakage: bool = True,
                  membership: bool = True) -> dict[str, Any]:
    """Attack a finished simulated run (``fedrec privacy-audit``): item-set leakage from the
    replayed ``round_number`` (default: the last) in every view the run's mode gives the server,
    membership inference on model.pt against the customers ``audit_holdout`` kept out, its
    empirical epsilon lower bound, and the anonymized stores' re-identification risk. Writes
    ``run_dir``/privacy/attacks.json and attacks.md and refreshes the privacy report; returns
    attacks.json's content, whose ``verdict.consistent`` is False when an attack proves more
    than the accounted epsilon. Logs progress."""
    logs.attach_default_handler()
    from fedrec.privacy_audit import audit_privacy

    return audit_privacy(Path(run_dir), round_number=round_number, seed=seed, leakage=leakage, membership=membership)


def privacy_audit_summary(document: dict[str, Any]) -> list[str]:
    """The audit's headline figures, a line each (what the CLI prints)."""
    from fedrec.privacy_audit import summary_lines

    return summary_lines(document)


def synth(out: str | Path, *, stores: int, users: int | None = None, seed: int = 0) -> tuple[Path, Path]:
    """Synthetic beauty-shop logs with personal data (``fedrec synth``) on the embedded Beauty
    histories: the events file at ``out`` (.csv or .parquet) and ``<stem>_catalog.csv``
    beside it. For exercising anonymization and group audits; see docs/synthetic-data.md."""
    from fedrec.data.synth import synthesize, write_synth

    return write_synth(synthesize(stores=stores, users=users, seed=seed), Path(out))


def make_key(out: str | Path) -> Path:
    """A new deployment secret for pseudonyms (``fedrec keys``): 32 random bytes in a file
    only its owner can read (mode 0600). Whoever holds it can link pseudonyms back to ids
    they already know: keep it with the stores, never on the server (docs/anonymization.md)."""
    from fedrec.anonymize import make_key as write_key

    return write_key(Path(out))


def draft_schema(src: str | Path, out: str | Path, *, schema: str | Path | None = None) -> Path:
    """A draft schema for the raw log ``src``, every column with its guessed role and why
    (``fedrec anonymize IN --write-schema OUT``), for the shop to review and pass as
    ``schema``. Extends ``schema`` when given. Never overwrites a file."""
    from fedrec.anonymize import draft_schema as draft

    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; a draft never replaces a schema. Pass another path or remove it.")
    document = draft(Path(src), schema=None if schema is None else Path(schema))
    write_json(out, document)
    return out


def anonymize_log(src: str | Path, dst: str | Path, *, key: str | Path, k: int = 5, l: int | None = None,
                  schema: str | Path | None = None, link_stores: bool = False, scrub_text: bool = False,
                  report_dir: str | Path | None = None) -> dict[str, Any]:
    """A store's raw log -> a k-anonymous, pseudonymous log fedrec trains on (``fedrec
    anonymize``); the report (JSON and Markdown) goes to ``report_dir``, by default
    ``<dst stem>_anonymization/`` beside ``dst``. ``l``: also l-diverse in the schema's
    sensitive attribute (skin_type by default). Returns the report. ``src`` is only read. Logs progress."""
    logs.attach_default_handler()
    from fedrec.anonymize import anonymize_file, load_key

    dst = Path(dst)
    folder = Path(report_dir) if report_dir is not None else dst.with_name(f"{dst.stem}_anonymization")
    report = anonymize_file(Path(src), dst, key=load_key(Path(key)), k=k, l=l, schema=None if schema is None else Path(schema),
                            link_stores=link_stores, scrub_text=scrub_text, report_dir=folder)
    return report.to_dict()
