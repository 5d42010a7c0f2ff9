"""Orchestration of a federated run: resolve and check the configuration, resume or start,
hand the rounds to the strategy, and after each one evaluate, checkpoint and log. The pieces
it calls live beside it: server_eval (the server's evaluation), prior_round (the DP round 0),
resume (may this run directory be used), run_record (metrics.json and model.pt), audit_round
(the federated release audit after the last round)."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common.logger import log as flwr_log
from flwr.serverapp import Grid

from fedrec.config import AuditConfig, FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.audit_round import federated_audit
from fedrec.federation.checkpoints import Checkpoint, checkpoint_path, load_checkpoint, prune_checkpoints, save_checkpoint
from fedrec.federation.client import check_federated, partitioned, shared_dataset
from fedrec.federation.checks import check_run
from fedrec.federation.distributed_step import plan_federation
from fedrec.federation.ledger_collection import ledger_collection
from fedrec.federation.prior_round import starts_from_prior, with_popularity_prior
from fedrec.federation.recipes import resolve_run
from fedrec.federation.resume import checkpoint_to_resume
from fedrec.federation.run_record import metrics_document, reported_round as reported_record, save_release_candidate
from fedrec.federation.secure_evaluation import SecureEvaluation, evaluates_securely
from fedrec.federation.secure_rounds import run_secure_rounds
from fedrec.federation.server_eval import GlobalEvaluator
from fedrec.federation.strategy import build_strategy, distributed_step, restore_server_optimizer_state, server_optimizer_state
from fedrec.federation.traffic import MeteredGrid
from fedrec.federation.wire_contract import disclosed_under
from fedrec.models import create_model
from fedrec.models.registry import load_model, model_class
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.central_dp import (
    SERVER, central_ledger, device_ledgers, epsilons_by_viewer, record_central_round, record_device_round)
from fedrec.privacy.distributed_dp import RunLedgers
from fedrec.privacy.ledger import load_run_ledger, save_run_ledger
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.noise_check import describe, record_noise_check
from fedrec.privacy.report import DISCLOSED_FILE, write_privacy_report
from fedrec.progress import time_left
from fedrec.release.audit_run import verdict_line, write_audit
from fedrec.release.gatekeeper import conclude
from fedrec.rundir import RunDir, write_json, write_text

log = logging.getLogger("fedrec.server")
RUN_ID_FILE = "run_id"  # in DIR/privacy/
ASKED_FILE = "last_round_asked"  # in DIR/privacy/: under client DP, the last round sent (a resume goes on after it)



def run_federation(grid: Grid, train: TrainConfig, federation: FederationConfig, run_dir: Path,
                   context: Context | None = None, *, checked: bool = False) -> dict[str, Any]:
    """Run (or resume) ``federation.rounds`` rounds; returns the metrics.json document.
    ``context`` is the ServerApp's (``--secagg`` runs Flower's legacy workflow on it).
    ``checked``: the configs were resolved and checked before this process started (fedrec
    simulate); under `flwr run` this is the first code that sees them, and checks them."""
    started = time.perf_counter()
    grid = MeteredGrid(grid)  # bytes per round, in the run's history
    check_federated(train.model)
    catalog = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    train, federation = resolve_run(train, federation, item_attributes=catalog.has_item_attributes)
    if not checked:
        check_run(train, federation, catalog)
    mode = privacy_mode(train.dp)
    plan = None
    if mode.joint_dp_sgd:  # the federation's one DP-SGD run, planned from every store's size
        plan = plan_federation(grid, train, federation, ConfigRecord(wire.config_to_wire(train, federation)))
        federation = dataclasses.replace(federation, rounds=plan.rounds)
    resolved = wire.config_to_wire(train, federation)
    label = mode.wire_label(secure=bool(federation.secagg))
    write_json(RunDir(run_dir).privacy / DISCLOSED_FILE, {"mode": label, "disclosed": disclosed_under(label)})
    checkpoint = checkpoint_to_resume(run_dir, federation, resolved)
    offset = checkpoint.round if checkpoint else 0
    if checkpoint and mode.stores_add_noise and last_round_asked(run_dir) > offset:
        log.warning("round %d was asked before the run stopped and never finished; each store answers a round once, so "
                    "the run goes on at round %d (the stores' ledgers count what they released)",
                    last_round_asked(run_dir), last_round_asked(run_dir) + 1)
        offset = last_round_asked(run_dir)
    history: list[dict[str, Any]] = list(checkpoint.history) if checkpoint else []
    previous_wall = sum(r["wall_seconds"] for r in history)
    _log_partition(train, federation)
    if plan is not None:
        log.info("%d rounds; stores send noisy clipped gradient sums, the server steps with %s at lr %g",
                 federation.rounds, train.optimizer, train.lr)
    else:
        log.info("%d rounds; clients train with %s at lr %g, batch %d, %d local epoch(s) a round, drift correction %s; "
                 "server %s (momentum %g)", federation.rounds, train.optimizer, train.lr, train.batch_size,
                 federation.local_epochs, federation.drift_correction, federation.strategy, federation.server_momentum)
    evaluator = GlobalEvaluator(train, federation) if federation.server_eval else None
    initial = checkpoint.state if checkpoint else _initial_state(train, federation)
    server_noise = (train.noise_multiplier, train.max_grad_norm) if mode.server_adds_noise else None
    # Under client DP the stores' test metrics leave them only as a secure sum (after_round), never per store.
    evaluate_securely = evaluates_securely(label, federation)
    strategy = build_strategy(dataclasses.replace(federation, fraction_evaluate=0.0) if evaluate_securely else federation,
                              row_keys=model_class(train.model).item_row_parameters, server_noise=server_noise,
                              joint_step=(_global_model(train, federation), plan) if plan else None,
                              devices=(partitioned(train, federation)[1].num_clients, train.seed)
                              if federation.device_shards else None)
    ledgers = ledger_collection(strategy)
    ledgers.privacy_ledgers.update(load_run_ledger(run_dir) if checkpoint else {})
    if mode.stores_add_noise:  # stores answer each round once: a resume must never ask one again
        ledgers.before_asking = lambda server_round: write_text(RunDir(run_dir).privacy / ASKED_FILE, str(offset + server_round))
    if checkpoint:
        restore_server_optimizer_state(strategy, checkpoint.server_optimizer)
    on_devices = mode.server_adds_noise and bool(federation.device_shards)  # secret Poisson cohorts: two viewers
    if on_devices:
        for name, ledger in device_ledgers(train, partitioned(train, federation)[1].num_clients).items():
            ledgers.privacy_ledgers.setdefault(name, ledger)
    elif mode.server_adds_noise:
        ledgers.privacy_ledgers.setdefault(SERVER, central_ledger(train, federation.min_available))
    distributed = RunLedgers(plan, ledgers.privacy_ledgers, secure=federation.secagg) if plan else None
    state_dir = Path(federation.state_dir).expanduser() if federation.state_dir else RunDir(run_dir).client_state
    message_config = ConfigRecord({
        **resolved, wire.ROUND_OFFSET: offset, wire.STATE_DIR: str(state_dir.resolve()),
        wire.RUN_ID: run_id(run_dir, fresh=checkpoint is None), **(plan.to_wire() if plan else {}),
    })
    if checkpoint is None and starts_from_prior(train):
        initial = with_popularity_prior(grid, train, federation, initial, message_config, strategy, run_dir,
                                        plan=plan, context=context)
        if distributed is not None:
            distributed.record_prior()
    secure_evaluation = SecureEvaluation(grid, context, federation, message_config) if evaluate_securely else None
    secure_notes: dict[int, dict[str, float]] = {}  # --secagg: clipped coordinates and error bound per round
    clock = {"round_start": time.perf_counter(), "sent": 0, "received": 0}

    def start_clock() -> None:
        clock.update(round_start=time.perf_counter(), sent=grid.bytes_sent, received=grid.bytes_received)

    def after_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:  # Flower evaluates the initial model first; we skip that
            start_clock()
            return None
        round_number = offset + server_round
        record: dict[str, Any] = {"round": round_number}
        state = arrays.to_torch_state_dict()
        if evaluator is not None and (round_number % federation.eval_every == 0 or round_number == federation.rounds):
            record.update(evaluator(state))
        client_metrics = strategy.client_evaluation.get(server_round)
        if secure_evaluation is not None:
            client_metrics = secure_evaluation(state, round_number)
        if client_metrics:
            record["client_metrics"] = dict(client_metrics)
        record["failures"] = strategy.failures_per_round.get(server_round, 0)
        record.update(secure_notes.get(server_round, {}))
        if on_devices:
            record_device_round(ledgers.privacy_ledgers, round_number, train.noise_multiplier, federation.fraction)
            record.update(epsilons_by_viewer(ledgers.privacy_ledgers))
        elif mode.server_adds_noise:
            record_central_round(ledgers.privacy_ledgers[SERVER], round_number, train.noise_multiplier)
        if distributed is not None:
            distributed.record_round(round_number)
            checked = distributed_step(strategy).noise_checks.pop(server_round, None)
            if checked is not None:  # the round's check coordinates against the noise its ledgers claim
                check = dataclasses.replace(checked, round=round_number)
                record_noise_check(run_dir, check)
                record["noise_check_ratio"], record["noise_check_passed"] = check.to_dict()["ratio"], check.passed
                if not check.passed:
                    log.error(describe(check))
                    flwr_log(logging.ERROR, "fedrec %s", describe(check))
        if ledgers.privacy_ledgers:
            save_run_ledger(run_dir, ledgers.privacy_ledgers)
            record["refused"] = ledgers.refusals_per_round.get(server_round, 0)
            record["epsilon_max"] = max(ledger.epsilon for ledger in ledgers.privacy_ledgers.values())
        record["wall_seconds"] = round(time.perf_counter() - clock["round_start"], 3)
        record["bytes_sent"] = grid.bytes_sent - clock["sent"]  # payload, all stores together
        record["bytes_received"] = grid.bytes_received - clock["received"]
        history.append(record)
        save_checkpoint(run_dir, Checkpoint(round_number, state, history, resolved, server_optimizer_state(strategy)))
        best, _ = reported_record(train, federation, history)  # the round model.pt and the gate may need
        prune_checkpoints(run_dir, keep_last=federation.keep_checkpoints, keep={best["round"]} if best else set())
        write_json(RunDir(run_dir).metrics, metrics_document(train, federation, history, previous_wall + time.perf_counter() - started, complete=False))
        # Without server-side evaluation, the clients' own (federated) test metrics.
        scored, whose = (record, "test") if "hr@10" in record else (dict(client_metrics or {}), "clients' test")
        left = time_left(sum(r["wall_seconds"] for r in history), len(history), len(history) + federation.rounds - round_number)
        measured = (f"{whose} HR@10 {_fmt(scored.get('hr@10'))} NDCG@10 {_fmt(scored.get('ndcg@10'))} valid HR@10 "
                    f"{_fmt(record.get('valid_hr@10'))}" if "hr@10" in scored else "trained (not evaluated this round)")
        log.info(
            "round %d/%d: %s, %d failed, %.1f s%s%s%s",
            round_number, federation.rounds, measured, record["failures"], record["wall_seconds"],
            (f", epsilon {record['epsilon_outsiders']:.3f} against outsiders, {record['epsilon_server']:.3f} against the "
             "server" if "epsilon_server" in record else
             f", epsilon max {record['epsilon_max']:.3f}, {record['refused']} refused" if "epsilon_max" in record else ""),
            f", noise check {_fmt(record['noise_check_ratio'])}" if "noise_check_ratio" in record else "",
            f", {left}" if left else "",
        )
        start_clock()
        return MetricRecord({k: float(v) for k, v in record.items() if isinstance(v, (int, float))})

    remaining = federation.rounds - offset
    if remaining > 0 and federation.secagg:
        if context is None:
            raise ConfigError("--secagg runs Flower's legacy workflow, which needs the ServerApp's context.")
        run_secure_rounds(grid, context, strategy, federation, initial=ArrayRecord(initial), num_rounds=remaining,
                          config=message_config, after_round=after_round, round_notes=secure_notes, plan=plan)
    elif remaining > 0:
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial),
            num_rounds=remaining,
            timeout=federation.round_timeout,
            train_config=message_config,
            evaluate_config=message_config,
            evaluate_fn=after_round,
        )
    else:
        log.info("run in %s already has %d of %d rounds; nothing to do", run_dir, offset, federation.rounds)
    document = metrics_document(train, federation, history, previous_wall + time.perf_counter() - started, complete=True)
    save_release_candidate(run_dir, train, federation, document)
    report = write_privacy_report(run_dir)
    document["privacy_report"] = str(report)
    log.info("privacy report: %s", report)
    write_json(RunDir(run_dir).metrics, document)
    if train.release_gate and remaining > 0 and document["reported_round"] is not None:
        document["release_gate"] = gate_reported_model(grid, train, federation, message_config, run_dir,
                                                       document["reported_round"], context)
    return document


def gate_reported_model(grid: Grid, train: TrainConfig, federation: FederationConfig, message_config: ConfigRecord,
                        run_dir: Path, reported_round: int, context: Context | None = None) -> dict[str, Any]:
    """The release gate on model.pt's round (not necessarily the last): the federated audit,
    written to DIR/audit/, then DIR/release/ when it passes. The verdict goes to the log and
    to metrics.json (``release_gate``), which this returns."""
    state = load_checkpoint(checkpoint_path(run_dir, reported_round)).state
    document, popularity, source = federated_audit(grid, train, federation, state, message_config, AuditConfig(),
                                                   run_dir=run_dir, context=context)
    write_audit(RunDir(run_dir), document)
    log.info("release gate on round %d: %s", reported_round, verdict_line(document))
    # Under `flwr run` only Flower's logger reaches the stream the user reads: say it there too.
    flwr_log(logging.INFO, "fedrec release gate on round %d: %s", reported_round, verdict_line(document))
    catalog = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    return conclude(RunDir(run_dir), document, model=load_model(RunDir(run_dir).model), data=catalog,
                    counts=popularity, counts_source=source)


def _global_model(train: TrainConfig, federation: FederationConfig) -> TorchRecommender:
    """A fresh global model with the catalog's attributes (public data: they travel with its
    state); under distributed DP the one the server's step trains."""
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.use_item_attributes(data)
    return model


def last_round_asked(run_dir: Path) -> int:
    """The last round this run sent to its stores (0: none, or a run that keeps no such record)."""
    path = RunDir(run_dir).privacy / ASKED_FILE
    return int(path.read_text(encoding="utf-8")) if path.exists() else 0


def run_id(run_dir: Path, *, fresh: bool) -> str:
    """The run's id, made when it starts and kept by a resume: stores' ledgers keep runs apart by it."""
    path = RunDir(run_dir).privacy / RUN_ID_FILE
    if fresh or not path.exists():
        write_text(path, uuid.uuid4().hex)
    return path.read_text(encoding="utf-8").strip()


def _initial_state(train: TrainConfig, federation: FederationConfig) -> dict[str, torch.Tensor]:
    return _global_model(train, federation).shareable_state()


def _log_partition(train: TrainConfig, federation: FederationConfig) -> None:
    """Per-client size statistics, when the server can see the partition (simulation)."""
    try:
        data, partition = partitioned(train, federation)
    except ConfigError as err:
        log.warning("no partition summary: %s", err)
        return
    log.info("partition %s\n%s", federation.partition, partition.describe(data))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
