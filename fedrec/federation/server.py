"""What the server does each run, without Flower specifics beyond the strategy call:
evaluate the global model, checkpoint every round, resume, and write the run directory."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import leave_one_out
from fedrec.data.catalog import align_to_catalog
from fedrec.data.split import EvalSet
from fedrec.errors import ConfigError
from fedrec.evaluation import evaluate
from fedrec.federation import wire
from fedrec.federation.checkpoints import Checkpoint, latest_checkpoint, load_checkpoint, checkpoint_path, save_checkpoint
from fedrec.federation.client import FEDERATED_MODELS, partitioned, shared_dataset
from fedrec.federation.checks import check_run
from fedrec.federation.recipes import resolve_run
from fedrec.federation.strategy import TolerantStrategy, build_strategy, restore_server_optimizer_state, server_optimizer_state
from fedrec.models import create_model
from fedrec.models.registry import model_class
from fedrec.models.mf import FoldInScorer, MatrixFactorization
from fedrec.privacy.central_dp import SERVER, central_ledger, record_central_round
from fedrec.privacy.ledger import load_run_ledger, save_run_ledger
from fedrec.privacy.report import write_privacy_report
from fedrec.progress import time_left
from fedrec.rundir import write_json
from fedrec.training.central import PROTOCOL, peak_rss_mb

log = logging.getLogger("fedrec.server")

CLIENT_STATE_DIR = "client_state"


class GlobalEvaluator:
    """Full-ranking metrics of the global model on the server's copy of the held-out items.

    In simulation the server reads the same data set the clients were cut from; deployed,
    it needs an evaluation set of its own (``server-eval=false`` skips this and relies on
    federated evaluation). MF user vectors never reach the server, so it folds them in
    from each user's history with the item side frozen.
    """

    def __init__(self, train: TrainConfig, federation: FederationConfig) -> None:
        data = shared_dataset(train.data, train.min_interactions, train.short_users)
        if federation.item_catalog and federation.item_catalog != train.data:
            catalog = shared_dataset(federation.item_catalog, train.min_interactions, train.short_users)
            data = align_to_catalog(data, catalog.items, min_interactions=train.min_interactions)
        split = leave_one_out(data)
        self.valid, self.test = split.valid, split.test
        if federation.eval_users and federation.eval_users < data.n_users:
            chosen = np.sort(np.random.default_rng(train.seed).choice(data.n_users, federation.eval_users, replace=False))
            self.valid, self.test = _subset(self.valid, chosen), _subset(self.test, chosen)
        self.model = create_model(train.model, train, n_users=0, n_items=data.n_items)
        self.n_items = data.n_items
        self.mask_history = train.mask_history

    def __call__(self, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        self.model.load_partial_state(state)
        scorer = FoldInScorer(self.model) if isinstance(self.model, MatrixFactorization) else self.model
        valid = evaluate(scorer, self.valid, mask_history=self.mask_history)
        test = evaluate(scorer, self.test, mask_history=self.mask_history)
        return {"hr@10": test["hr@10"], "ndcg@10": test["ndcg@10"], "valid_hr@10": valid["hr@10"], "metrics": test}


def _subset(eval_set: EvalSet, rows: np.ndarray) -> EvalSet:
    return EvalSet(eval_set.users[rows], [eval_set.histories[i] for i in rows], eval_set.targets[rows])


def run_federation(grid: Grid, train: TrainConfig, federation: FederationConfig, run_dir: Path) -> dict[str, Any]:
    """Run (or resume) ``federation.rounds`` rounds; returns the metrics.json document."""
    started = time.perf_counter()
    if train.model not in FEDERATED_MODELS:
        raise ConfigError(f"model={train.model!r} is not federated; use one of {', '.join(FEDERATED_MODELS)}.")
    catalog = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    train, federation = resolve_run(train, federation, item_attributes=catalog.has_item_attributes)
    check_run(train, federation, catalog)
    resolved = wire.config_to_wire(train, federation)
    checkpoint = _checkpoint_to_resume(run_dir, federation, resolved)
    offset = checkpoint.round if checkpoint else 0
    history: list[dict[str, Any]] = list(checkpoint.history) if checkpoint else []
    previous_wall = sum(r["wall_seconds"] for r in history)
    _log_partition(train, federation)
    log.info("%d rounds; clients train with %s at lr %g, batch %d, %d local epoch(s) a round, drift correction %s; "
             "server %s (momentum %g)", federation.rounds, train.optimizer, train.lr, train.batch_size,
             federation.local_epochs, federation.drift_correction, federation.strategy, federation.server_momentum)
    evaluator = GlobalEvaluator(train, federation) if federation.server_eval else None
    initial = checkpoint.state if checkpoint else _initial_state(train, federation)
    central_dp = (train.noise_multiplier, train.max_grad_norm) if federation.central_dp else None
    strategy = build_strategy(federation, row_keys=model_class(train.model).item_row_parameters, central_dp=central_dp)
    strategy.privacy_ledgers.update(load_run_ledger(run_dir) if checkpoint else {})
    if checkpoint:
        restore_server_optimizer_state(strategy, checkpoint.server_optimizer)
    if federation.central_dp:
        strategy.privacy_ledgers.setdefault(SERVER, central_ledger(train, federation.min_available))
    message_config = ConfigRecord(
        {**resolved, wire.ROUND_OFFSET: offset, wire.STATE_DIR: str((run_dir / CLIENT_STATE_DIR).resolve())}
    )
    if checkpoint is None and _starts_from_prior(train):
        initial = _with_popularity_prior(grid, train, federation, initial, message_config, strategy)
    clock = {"round_start": time.perf_counter()}

    def after_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:  # Flower evaluates the initial model first; we skip that
            clock["round_start"] = time.perf_counter()
            return None
        round_number = offset + server_round
        record: dict[str, Any] = {"round": round_number}
        state = arrays.to_torch_state_dict()
        if evaluator is not None:
            record.update(evaluator(state))
        client_metrics = strategy.client_evaluation.get(server_round)
        if client_metrics:
            record["client_metrics"] = dict(client_metrics)
        record["failures"] = strategy.failures_per_round.get(server_round, 0)
        if federation.central_dp:
            record_central_round(strategy.privacy_ledgers[SERVER], round_number, train.noise_multiplier)
        if strategy.privacy_ledgers:
            save_run_ledger(run_dir, strategy.privacy_ledgers)
            record["refused"] = strategy.refusals_per_round.get(server_round, 0)
            record["epsilon_max"] = max(ledger.epsilon for ledger in strategy.privacy_ledgers.values())
        record["wall_seconds"] = round(time.perf_counter() - clock["round_start"], 3)
        history.append(record)
        save_checkpoint(run_dir, Checkpoint(round_number, state, history, resolved, server_optimizer_state(strategy)))
        write_json(run_dir / "metrics.json", _document(train, federation, history, previous_wall + time.perf_counter() - started, complete=False))
        # Without server-side evaluation, the clients' own (federated) test metrics.
        scored, whose = (record, "test") if "hr@10" in record else (dict(client_metrics or {}), "clients' test")
        left = time_left(sum(r["wall_seconds"] for r in history), len(history), len(history) + federation.rounds - round_number)
        log.info(
            "round %d/%d: %s HR@10 %s NDCG@10 %s valid HR@10 %s, %d failed, %.1f s%s%s",
            round_number, federation.rounds, whose, _fmt(scored.get("hr@10")), _fmt(scored.get("ndcg@10")),
            _fmt(record.get("valid_hr@10")), record["failures"], record["wall_seconds"],
            f", epsilon max {record['epsilon_max']:.3f}, {record['refused']} refused" if "epsilon_max" in record else "",
            f", {left}" if left else "",
        )
        clock["round_start"] = time.perf_counter()
        return MetricRecord({k: float(v) for k, v in record.items() if isinstance(v, (int, float))})

    remaining = federation.rounds - offset
    if remaining > 0:
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
    document = _document(train, federation, history, previous_wall + time.perf_counter() - started, complete=True)
    _save_release_candidate(run_dir, train, federation, document)
    report = write_privacy_report(run_dir)
    document["privacy_report"] = str(report)
    log.info("privacy report: %s", report)
    write_json(run_dir / "metrics.json", document)
    return document


def _starts_from_prior(train: TrainConfig) -> bool:
    return bool(train.dp and train.prior_noise and getattr(model_class(train.model), "uses_popularity_prior", False))


def _with_popularity_prior(
    grid: Grid, train: TrainConfig, federation: FederationConfig, initial: dict[str, torch.Tensor],
    config: ConfigRecord, strategy: TolerantStrategy,
) -> dict[str, torch.Tensor]:
    """Round 0 of a DP run: every client releases noisy item counts (each accounted in its
    own ledger), the server sums them (post-processing) and the model starts from that
    popularity. A resumed run never asks again: its checkpoints already hold the prior."""
    node_ids = _wait_for_nodes(grid, federation.min_available, federation.round_timeout)
    messages = [
        Message(content=RecordDict({wire.ARRAYS: ArrayRecord(initial), wire.CONFIG: config}), dst_node_id=node, message_type=MessageType.QUERY)
        for node in node_ids
    ]
    answers = list(grid.send_and_receive(messages, timeout=federation.round_timeout))
    replies = [m for m in answers if not m.has_error()]
    if not replies:
        reason = next((m.error.reason for m in answers if m.has_error()), "no reply within the round timeout")
        raise ConfigError(f"no client answered the popularity-prior query ({reason}); check the clients' logs, "
                          "or run without a prior (--prior-noise 0).")
    total = sum(m.content[wire.ARRAYS][wire.PRIOR_COUNTS].numpy() for m in replies)
    strategy.take_privacy_records(0, replies)
    log.info("popularity prior: noisy counts from %d of %d clients (noise multiplier %g each)", len(replies), len(node_ids), train.prior_noise)
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.load_partial_state(initial)
    model.apply_popularity_prior(total)
    return model.shareable_state()


def _wait_for_nodes(grid: Grid, wanted: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        node_ids = list(grid.get_node_ids())
        if len(node_ids) >= wanted or time.monotonic() > deadline:
            return node_ids
        time.sleep(1.0)


def _checkpoint_to_resume(run_dir: Path, federation: FederationConfig, resolved: dict[str, Any]) -> Checkpoint | None:
    checkpoint = latest_checkpoint(run_dir)
    if not federation.resume:
        if checkpoint is not None:
            raise ConfigError(
                f"{run_dir} already holds a run (round {checkpoint.round}); pass --resume to continue it "
                "or choose another --out. Nothing was overwritten."
            )
        return None
    if checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; start the run without --resume.")
    ignore = {"rounds", "resume", "round-timeout", "min-clients", "min-available", "run-dir"}
    saved = {k: checkpoint.config[k] if k in checkpoint.config else _option_default(k) for k in set(resolved) | set(checkpoint.config)}
    changed = {k for k in saved if k not in ignore and resolved.get(k) != saved[k]}
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {resolved.get(k)!r}" for k in sorted(changed))
        raise ConfigError(f"--resume with a different configuration ({details}); resume with the run's own settings.")
    log.info("resuming %s after round %d", run_dir, checkpoint.round)
    return checkpoint


def _option_default(key: str) -> Any:
    """What a checkpoint without ``key`` ran with: unset (None), or, for an option added after
    the run was started, its default (new options default to the behaviour before them)."""
    name = key.replace("-", "_")
    for config in (TrainConfig, FederationConfig):
        for field in dataclasses.fields(config):
            if field.name == name and field.default is not dataclasses.MISSING:
                return field.default
    return None


def _initial_state(train: TrainConfig, federation: FederationConfig) -> dict[str, torch.Tensor]:
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.use_item_attributes(data)  # public catalog data: sent to clients with the first global state
    return model.shareable_state()


def _log_partition(train: TrainConfig, federation: FederationConfig) -> None:
    """Per-client size statistics, when the server can see the partition (simulation)."""
    try:
        data, partition = partitioned(train, federation)
    except ConfigError as err:
        log.warning("no partition summary: %s", err)
        return
    log.info("partition %s\n%s", federation.partition, partition.describe(data))


def reported_round(train: TrainConfig, federation: FederationConfig, history: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The round whose model and metrics a run reports, and how it was chosen.

    Under DP (client or server side) it is the last round: picking a round by held-out
    users' validation HR@10 would be a data-dependent release the accounting does not
    cover. Validation is still recorded per round; it picks nothing.
    """
    if not history:
        return None, "none"
    if train.dp or federation.central_dp:
        return history[-1], "last round (under DP validation picks nothing)"
    scored = [r for r in history if "valid_hr@10" in r]
    if not scored:
        return history[-1], "last round (no server-side validation)"
    return max(scored, key=lambda r: r["valid_hr@10"]), "best validation HR@10"


def _document(train: TrainConfig, federation: FederationConfig, history: list[dict[str, Any]], wall: float, *, complete: bool) -> dict[str, Any]:
    chosen, selection = reported_round(train, federation, history)
    return {
        "model": train.model,
        "data": train.data,
        "protocol": PROTOCOL,
        "metrics": (chosen or {}).get("metrics") or (chosen or {}).get("client_metrics", {}),
        "wall_seconds": round(wall, 3),
        "config": {**train.to_dict(), **{f"federation.{k}": v for k, v in federation.to_dict().items()}},
        "federation": federation.to_dict(),
        "reported_round": chosen["round"] if chosen else None,
        "round_selection": selection,
        "rounds": history,
        "complete": complete,
        "peak_rss_mb": peak_rss_mb(),
    }


def _save_release_candidate(run_dir: Path, train: TrainConfig, federation: FederationConfig, document: dict[str, Any]) -> None:
    """model.pt: the global model of the reported round (the last one under DP)."""
    if document["reported_round"] is None:
        return
    checkpoint = load_checkpoint(checkpoint_path(run_dir, document["reported_round"]))
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)  # item ids = catalog
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.load_partial_state(checkpoint.state)
    model.save(run_dir / "model.pt")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
