"""``fedrec audit DIR``: audit a finished run's model and gate its release.

One evaluation pass of the run's model on its own test split (leave-one-out, full ranking,
as training reported it) gives each user's target rank and top-k list; every audit in
``fedrec.audit`` is computed from those, nothing is ranked twice. The popularity baseline
is computed in closed form from the same training counts (no second pass). Writes
``DIR/audit/audit.json`` and ``audit.md``; the model and the run's other files are only read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fedrec.audit import (
    ACTIVITY_LABELS, activity_groups, activity_threshold, attribute_groups, exposure_sums, finish_group_utility,
    finish_popularity, finish_provider_exposure, group_utility_sums, interaction_counts, vocabulary,
)
from fedrec.audit.gate import gate
from fedrec.config import AuditConfig
from fedrec.data import Interactions, LeaveOneOut, leave_one_out, load_dataset
from fedrec.data.catalog import align_to_catalog
from fedrec.errors import ConfigError, ModelError
from fedrec.evaluation import EvaluationPass, evaluation_pass
from fedrec.metrics import summarize
from fedrec.models.base import Recommender
from fedrec.models.registry import load_model
from fedrec.release.audit_report import render_markdown
from fedrec.rundir import RunDir, write_json, write_text

log = logging.getLogger("fedrec.audit")

PROVIDER_COLUMNS = ("brand", "category")  # item attribute columns that name one provider per item
DP_NOTE = (
    "The run trained under differential privacy, but this audit reads the exact training counts and the test "
    "users' lists, which no DP release covers and no ledger accounts. Its figures stay with the operator and are "
    "advisory: the audit changes only the verdict, never the reported model."
)


@dataclass(frozen=True)
class Subject:
    """What an audit reads from a run directory."""

    run: RunDir
    document: dict[str, Any]  # metrics.json
    data: Interactions
    split: LeaveOneOut
    model: Recommender
    mask_history: bool


def open_subject(run_dir: str | Path) -> Subject:
    """The run's model and the data it was evaluated on (a federation's, numbered by its item catalog)."""
    run = RunDir(Path(run_dir)).require()
    if not run.model.exists():
        raise ConfigError(
            f"{run_dir} has no model.pt to audit (a run that stopped before its first model, or a federation with "
            "no reported round); finish the run (fedrec simulate --resume DIR) or audit another one."
        )
    document = run.read_metrics()
    config = document.get("config") or {}
    spec = config.get("data", document.get("data"))
    min_interactions, short_users = config.get("min_interactions", 3), config.get("short_users", "drop")
    data = load_dataset(spec, min_interactions=min_interactions, short_users=short_users)
    catalog_spec = config.get("federation.item_catalog")
    if catalog_spec and catalog_spec != spec:  # a federation's item ids are the catalog's, as its server evaluated them
        catalog = load_dataset(catalog_spec, min_interactions=min_interactions, short_users=short_users)
        data = align_to_catalog(data, catalog.items, min_interactions=min_interactions)
    model = load_model(run.model)
    if model.n_items != data.n_items:
        raise ModelError(
            f"{run.model} scores {model.n_items} items but {spec} has {data.n_items}; the data changed since "
            "the run, so audit against the data it was trained on."
        )
    return Subject(run, document, data, leave_one_out(data), model, bool(config.get("mask_history", True)))


def popularity_ranks(counts: np.ndarray, histories: Sequence[np.ndarray], targets: np.ndarray, *,
                     mask_history: bool = True) -> np.ndarray:
    """(U,) 0-based full-ranking rank of each target when items are scored by ``counts``
    (the popularity recommender), with fedrec.metrics' rules: ties count against the target,
    seen items are masked, a masked target ranks last. Closed form, no score matrix."""
    scores = np.asarray(counts, dtype=np.float64).copy()
    n_columns = scores.size
    scores[0] = -np.inf
    target_scores = scores[targets]
    ordered = np.sort(scores)
    ranks = (n_columns - np.searchsorted(ordered, target_scores, side="left") - 1).astype(np.int64)
    if mask_history and len(histories):
        lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        users = np.repeat(np.arange(len(histories)), lengths)
        items = np.concatenate(histories).astype(np.int64)
        pairs = np.sort(users * n_columns + items)  # already near-sorted: faster than np.unique's hashing
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if pairs.size else pairs  # a repeat is masked once
        users, items = pairs // n_columns, pairs % n_columns
        seen_target = items == targets[users]
        ahead = (scores[items] >= target_scores[users]) & ~seen_target
        ranks -= np.bincount(users[ahead], minlength=len(histories))
        ranks[np.unique(users[seen_target])] = n_columns
    return ranks


def groupings(subject: Subject) -> dict[str, np.ndarray]:
    """Label per evaluated user for activity, store, and every per-user attribute column."""
    users = subject.split.test.users
    lengths = np.fromiter((len(subject.split.train[u]) for u in users), dtype=np.int64, count=len(users))
    found = {"activity": activity_groups(lengths, threshold=activity_threshold(lengths))}
    if subject.data.stores is not None:
        found["store"] = attribute_groups(subject.data.stores[users])
    attributes = subject.data.user_attributes
    if attributes is not None:
        frame = attributes.reindex(pd.Index(users))
        for column in frame.columns:
            found[str(column)] = attribute_groups(frame[column].to_list())
    return found


def provider_audits(subject: Subject, sums, counts: np.ndarray) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Exposure per brand and per category, from the item columns of that name; a reason per skip."""
    items = subject.data.item_attributes
    if items is None or not any(c in items.columns for c in PROVIDER_COLUMNS):
        what = ("its item attributes are unnamed id lists (Beauty: brand and category ids mixed), not one named "
                "provider per item" if items is not None and "attributes" in items.columns else "it has no item attributes")
        return {}, [{"audit": "provider-exposure", "reason": f"{subject.data.source}: {what}; a log with brand or "
                     "category columns (as fedrec synth writes) is audited per provider"}]
    found, skipped = {}, []
    for column in PROVIDER_COLUMNS:
        if column not in items.columns:
            skipped.append({"audit": f"provider-exposure/{column}", "reason": f"no item column {column!r}"})
            continue
        values = items[column].reindex(pd.RangeIndex(subject.data.n_items + 1))
        present = (values.notna() & (values.astype(str) != "")).to_numpy().copy()
        present[0] = False
        labels = tuple(sorted(values[present].astype(str).unique()))
        index = {label: p for p, label in enumerate(labels)}
        provider = np.full(subject.data.n_items + 1, -1, dtype=np.int64)
        provider[present] = [index[str(v)] for v in values[present]]
        found[column] = finish_provider_exposure(sums, item_provider=provider, target=counts, labels=labels, name=column)
    return found, skipped


def compute_audits(subject: Subject, evaluated: EvaluationPass, config: AuditConfig) -> dict[str, Any]:
    """Every audit of one evaluation pass, and the notes and skips a reader needs."""
    test, k = subject.split.test, config.top_k
    ranks = evaluated.ranks.numpy()
    counts = interaction_counts(subject.split.train, n_items=subject.data.n_items)
    baseline = popularity_ranks(counts, test.histories, test.targets, mask_history=subject.mask_history)
    keys = subject.data.users.raw[test.users]
    groups = {}
    for name, labels in groupings(subject).items():
        vocab = ACTIVITY_LABELS if name == "activity" else vocabulary(labels)
        sums = group_utility_sums(ranks, labels, keys, labels=vocab, name=name, k=k, n_boot=config.n_boot,
                                  seed=config.seed)
        groups[name] = finish_group_utility(sums, min_group_size=config.min_group_size)
    exposure = exposure_sums(evaluated.top_items, test.histories, n_items=subject.data.n_items)
    providers, skipped = provider_audits(subject, exposure, counts)
    return {
        "utility": {"k": k, "users": int(len(ranks)),
                    f"hr@{k}": summarize(evaluated.ranks, (k,))[f"hr@{k}"],
                    f"popularity_baseline_hr@{k}": float((baseline < k).mean()) if len(baseline) else None},
        "popularity": finish_popularity(exposure, popularity=counts, popularity_source="training-interactions"),
        "groups": groups,
        "providers": providers,
        "skipped_audits": skipped,
    }


def audit_run(run_dir: str | Path, config: AuditConfig) -> dict[str, Any]:
    """Audit the run in ``run_dir`` and gate it; writes DIR/audit/audit.json and audit.md."""
    subject = open_subject(run_dir)
    started = time.perf_counter()
    evaluated = evaluation_pass(subject.model, subject.split.test, mask_history=subject.mask_history, top_k=config.top_k)
    evaluated_at = time.perf_counter()
    audits = compute_audits(subject, evaluated, config)
    verdict = gate(audits, config)
    finished = time.perf_counter()
    train = subject.document.get("config") or {}
    document = {
        "run": str(subject.run.root), "model": subject.document.get("model"), "data": subject.data.source,
        "federated": "federation.partition" in train, "dp": bool(train.get("dp")),
        "protocol": "full-ranking-leave-one-out test split; one evaluation pass",
        "config": config.to_dict(), **verdict, **audits,
        "notes": [DP_NOTE] if train.get("dp") else [],
        "seconds": {"evaluation_pass": round(evaluated_at - started, 3), "audits": round(finished - evaluated_at, 3)},
    }
    subject.run.audit.mkdir(parents=True, exist_ok=True)
    write_json(subject.run.audit / "audit.json", document)
    write_text(subject.run.audit / "audit.md", render_markdown(document))
    log.info("audit of %s: %s (%d checks)", subject.run.root, verdict["verdict"], len(verdict["checks"]))
    return document
