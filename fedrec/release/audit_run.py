"""``fedrec audit DIR``: audit a finished run's model and gate its release.

One evaluation pass of the run's model on its own test split (leave-one-out, full ranking,
as training reported it) gives each user's target rank and top-k list; every audit in
``fedrec.audit`` is computed from those, nothing is ranked twice. The popularity baseline
is computed in closed form from the same training counts (no second pass). Writes
``DIR/audit/audit.json`` and ``audit.md``; the model and the run's other files are only read.

The audit is two steps so a federation can split it (fedrec.federation.audit_round):

    audit_sums     one evaluation pass over some users -> addable sums (per-group rank
                   histograms and bootstrap replicates, exposure, the headline utilities)
    finish_audits  (summed) sums + item popularity -> the audits the gate reads

Here the server holds every test user, so it is one client: the sums of all users, finished.
A federation run with ``--audit-holdout`` kept some customers out of training; its stores
audit only the customers who trained, and so does this audit (the test users and the
training counts both leave the holdout out), so it measures what the run's release gate
measured, on the same users (``utility.population`` says whom).

An earlier audit in DIR/audit/ (the release gate's at the end of training, or an earlier
``fedrec audit``) is never overwritten: it is moved, with its page and pictures, to
DIR/audit/earlier/<n>/ and the new audit names it under ``replaces``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fedrec.audit import (
    ACTIVITY_LABELS, AuditSums, ExposureSums, activity_groups, activity_threshold, attribute_groups, exposure_sums,
    finish_group_utility, finish_popularity, finish_provider_exposure, group_utility_sums, interaction_counts,
    vocabulary,
)
from fedrec.audit.groupings import OTHER, relabel
from fedrec.audit.gate import failed_checks, gate
from fedrec.audit.group_utility import GroupUtilitySums, UtilitySums, hit_rate, utility_sums
from fedrec.config import AuditConfig
from fedrec.data import EvalSet, Interactions, LeaveOneOut, leave_one_out, load_dataset
from fedrec.data.catalog import align_to_catalog
from fedrec.data.holdout import held_out
from fedrec.errors import ConfigError, ModelError
from fedrec.evaluation import EvaluationPass, evaluation_pass, tested_population
from fedrec.models.base import Recommender, Scorer
from fedrec.models.registry import load_model
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.popularity_prior import released_prior
from fedrec.release.audit_report import render_markdown
from fedrec.release.earlier_audits import keep_earlier
from fedrec.release.plots import write_audit_plots
from fedrec.rundir import RunDir, sha256_file, write_json, write_text

log = logging.getLogger("fedrec.audit")

PROVIDER_COLUMNS = ("brand", "category")  # item attribute columns that name one provider per item
MODEL, POPULARITY_BASELINE = "model", "popularity-baseline"  # the two headline utilities (UtilitySums names)
ACTIVITY = "activity"
TRAINING_COUNTS = "training-interactions"  # popularity_source of exact training counts
DP_NOTE = (
    "The run trained under differential privacy. Item popularity here is only what it released and accounted (its "
    "noisy popularity prior or counts; none when it released none), but the test users' lists are covered by no DP "
    "release and no ledger. Its figures stay with the operator and are advisory: the audit changes only the "
    "verdict, never the reported model."
)
DP_PRIOR = "dp-popularity-prior (the noisy item counts the run released and accounted)"
NO_PRIOR = (
    "the run trained under DP and released no item counts (a model without a popularity prior, or prior-noise 0), "
    "and the exact counts are not released under DP; the popularity baseline, the popularity of recommended items "
    "and provider target shares are not measured, so the checks on them cannot pass (train with a prior, or "
    "release with fedrec release DIR --override-reason saying why)"
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
    holdout: float = 0.0  # --audit-holdout: the share of customers the run kept out of training
    trained: np.ndarray | None = None  # (n_users,) bool: True for a customer who trained (None: everyone)

    @property
    def test(self) -> EvalSet:
        """The test users the audit ranks: those who trained (the run's stores audit no other)."""
        test = self.split.test
        if self.trained is None:
            return test
        rows = np.flatnonzero(self.trained[test.users])
        return EvalSet(test.users[rows], [test.histories[i] for i in rows], test.targets[rows])

    @property
    def train_histories(self) -> list[np.ndarray]:
        """The training histories of the customers who trained (what the popularity counts)."""
        if self.trained is None:
            return self.split.train
        return [history for history, trained in zip(self.split.train, self.trained) if trained]


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
    holdout = float(config.get("federation.audit_holdout") or 0.0)
    trained = ~held_out(data.users.raw, holdout, int(config["seed"])) if holdout else None
    return Subject(run, document, data, leave_one_out(data), model, bool(config.get("mask_history", True)),
                   holdout, trained)


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


def user_groupings(data: Interactions, split: LeaveOneOut, users: np.ndarray, *,
                   threshold: int | None = None) -> dict[str, np.ndarray]:
    """Label per evaluated user for activity, store, and every per-user attribute column.

    Activity splits at ``threshold`` train-history items (None: the quantile of these users,
    as a central audit computes it; a federation's clients get the global one)."""
    lengths = np.fromiter((len(split.train[u]) for u in users), dtype=np.int64, count=len(users))
    if threshold is None:
        threshold = activity_threshold(lengths)
    found = {ACTIVITY: activity_groups(lengths, threshold=threshold)}
    if data.stores is not None:
        found["store"] = attribute_groups(data.stores[users])
    attributes = data.user_attributes
    if attributes is not None:
        frame = attributes.reindex(pd.Index(users))
        for column in frame.columns:
            found[str(column)] = attribute_groups(frame[column].to_list())
    return found


def groupings(subject: Subject) -> dict[str, np.ndarray]:
    """Label per evaluated user of a run's test split (central audit)."""
    return user_groupings(subject.data, subject.split, subject.test.users)


def audit_sums(evaluated: EvaluationPass, test: EvalSet, customer_keys: np.ndarray, labels: Mapping[str, np.ndarray], *,
               n_items: int, popularity: np.ndarray | None, mask_history: bool, config: AuditConfig,
               vocabularies: Mapping[str, Sequence[str]] | None = None) -> list[AuditSums]:
    """Step one: the addable sums of one evaluation pass over ``test``'s users (all of a run's,
    or one client's). ``popularity`` scores the baseline recommender (None: no baseline);
    ``labels`` are each grouping's per-user labels, in the order the audit reports them;
    ``vocabularies``: each grouping's labels fixed in advance (fedrec.release.fixed_vocabularies:
    a value they do not list counts under OTHER, a grouping they do not name is left out), or
    None for the labels these users hold."""
    k = config.top_k
    ranks = evaluated.ranks.numpy()
    found: list[AuditSums] = [utility_sums(ranks, name=MODEL, k=k)]
    if popularity is not None:
        baseline = popularity_ranks(popularity, test.histories, test.targets, mask_history=mask_history)
        found.append(utility_sums(baseline, name=POPULARITY_BASELINE, k=k))
    for name, groups in labels.items():
        if vocabularies is None:
            vocab = ACTIVITY_LABELS if name == ACTIVITY else vocabulary(groups)
        elif name not in vocabularies:
            continue
        else:
            vocab = tuple(vocabularies[name])
            groups = relabel(groups, vocab) if OTHER in vocab else groups
        found.append(group_utility_sums(ranks, groups, customer_keys, labels=vocab, name=name, k=k,
                                        n_boot=config.n_boot, seed=config.seed))
    found.append(exposure_sums(evaluated.top_items, test.histories, n_items=n_items))
    return found


def provider_audits(data: Interactions, sums: ExposureSums, counts: np.ndarray) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Exposure per brand and per category, from the item columns of ``data`` (the catalog)
    of that name; a reason per skip."""
    items = data.item_attributes
    if items is None or not any(c in items.columns for c in PROVIDER_COLUMNS):
        what = ("its item attributes are unnamed id lists (Beauty: brand and category ids mixed), not one named "
                "provider per item" if items is not None and "attributes" in items.columns else "it has no item attributes")
        return {}, [{"audit": "provider-exposure", "reason": f"{data.source}: {what}; a log with brand or "
                     "category columns (as fedrec synth writes) is audited per provider"}]
    found, skipped = {}, []
    for column in PROVIDER_COLUMNS:
        if column not in items.columns:
            skipped.append({"audit": f"provider-exposure/{column}", "reason": f"no item column {column!r}"})
            continue
        values = items[column].reindex(pd.RangeIndex(data.n_items + 1))
        present = (values.notna() & (values.astype(str) != "")).to_numpy().copy()
        present[0] = False
        labels = tuple(sorted(values[present].astype(str).unique()))
        index = {label: p for p, label in enumerate(labels)}
        provider = np.full(data.n_items + 1, -1, dtype=np.int64)
        provider[present] = [index[str(v)] for v in values[present]]
        found[column] = finish_provider_exposure(sums, item_provider=provider, target=counts, labels=labels, name=column)
    return found, skipped


def finish_audits(sums: Mapping[str, AuditSums], catalog: Interactions, *, popularity: np.ndarray | None,
                  popularity_source: str, config: AuditConfig, order: Sequence[str] = (),
                  why_no_popularity: str = "", holdout: float = 0.0) -> dict[str, Any]:
    """Step two: every audit from (summed) sums; suppression of small groups happens here, on
    the counts of everyone the sums hold. ``catalog`` names the items' providers; without
    ``popularity`` the popularity and provider audits are skipped for ``why_no_popularity``.
    Groupings come in ``order``, then any others by name. ``holdout``: the run's
    --audit-holdout, for the words that say whom the test HR@k covers."""
    k = config.top_k
    model = sums[f"{UtilitySums.KIND}/{MODEL}"]
    baseline = sums.get(f"{UtilitySums.KIND}/{POPULARITY_BASELINE}")
    by_name = {s.name: s for s in sums.values() if type(s) is GroupUtilitySums}
    names = [n for n in order if n in by_name] + sorted(set(by_name) - set(order))
    groups = {name: finish_group_utility(by_name[name], min_group_size=config.min_group_size) for name in names}
    users = int(model.counts.sum())
    exposure = sums[ExposureSums.KIND]
    if popularity is None:
        popular = popularity_free(exposure, "none (see skipped_audits)")
        providers = {}
        skipped = [{"audit": audit, "reason": why_no_popularity}
                   for audit in ("popularity-baseline", "popularity (arp, long tail)", "provider-exposure")]
    else:
        popular = finish_popularity(exposure, popularity=popularity, popularity_source=popularity_source)
        providers, skipped = provider_audits(catalog, exposure, popularity)
    return {
        "utility": {"k": k, "users": users, "population": tested_population(holdout=holdout),
                    f"hr@{k}": hit_rate(model) if users else 0.0,
                    f"popularity_baseline_hr@{k}": None if baseline is None else hit_rate(baseline)},
        "popularity": popular,
        "groups": groups,
        "providers": providers,
        "skipped_audits": skipped,
    }


def popularity_free(exposure: ExposureSums, source: str) -> dict[str, Any]:
    """The popularity block without any item popularity: coverage and exposure inequality
    stand (they read only the lists); everything measured against popularity is None, so the
    gate calls it unmeasured rather than passing it."""
    k = exposure.k
    kept = {"audit", "k", "users", "n_items", f"coverage@{k}", f"gini_exposure@{k}", f"gini_count@{k}",
            f"exposure_curve@{k}"}
    found = finish_popularity(exposure, popularity=np.zeros(exposure.n_items + 1), popularity_source="none")
    return {**{key: (value if key in kept else None) for key, value in found.items()}, "popularity_source": source}


def compute_audits(subject: Subject, evaluated: EvaluationPass, config: AuditConfig) -> dict[str, Any]:
    """Every audit of one evaluation pass, and the notes and skips a reader needs."""
    test = subject.test
    counts, source = audit_popularity(subject)
    labels = groupings(subject)
    sums = audit_sums(evaluated, test, subject.data.users.raw[test.users], labels, n_items=subject.data.n_items,
                      popularity=counts, mask_history=subject.mask_history, config=config)
    return finish_audits({s.key: s for s in sums}, subject.data, popularity=counts, popularity_source=source,
                         config=config, order=list(labels), why_no_popularity=source, holdout=subject.holdout)


def audit_popularity(subject: Subject) -> tuple[np.ndarray | None, str]:
    """(item popularity, its source): the exact training counts, but under DP only what the
    run released and accounted (DIR/privacy/popularity_prior.pt), or None."""
    if not privacy_mode((subject.document.get("config") or {}).get("dp")).stores_add_noise:
        return interaction_counts(subject.train_histories, n_items=subject.data.n_items), TRAINING_COUNTS
    prior = released_prior(subject.run.root)
    return (prior, DP_PRIOR) if prior is not None else (None, NO_PRIOR)


def scorer(model: Recommender, n_users: int) -> Scorer:
    """What ranks the run's users: the model, or for a model saved without their user vectors
    (an MF model.pt of a federation) its item side with vectors folded in, as the server
    evaluated it (``Recommender.scorer_for``)."""
    return model.scorer_for(n_users)


def write_audit(run: RunDir, document: dict[str, Any]) -> Path:
    """DIR/audit/audit.json, its pictures and audit.md of an audit document (central or
    federated), stamped with the sha256 of the model.pt it audited; returns audit.json. An
    audit already there is kept in DIR/audit/earlier/<n>/ and named under ``replaces``."""
    run.audit.mkdir(parents=True, exist_ok=True)
    document["replaces"] = keep_earlier(run)
    if run.model.exists():
        document["model_sha256"] = sha256_file(run.model)
    pictures = write_audit_plots(document, run.audit)
    path = write_json(run.audit / "audit.json", document)
    write_text(run.audit / "audit.md", render_markdown(document, pictures=[p.name for p in pictures.values()]))
    return path


def verdict_line(document: Mapping[str, Any]) -> str:
    """One log line: the verdict and, when blocked, each failed check's message."""
    failed = failed_checks(document)
    return f"{document['verdict']} ({len(document['checks'])} checks" + (
        f"; failed: {'; '.join(c['message'] for c in failed)})" if failed else ")")


def audit_run(run_dir: str | Path, config: AuditConfig, *, baseline: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Audit the run in ``run_dir`` and gate it (with the change bounds against a ``baseline``
    release's audit); writes DIR/audit/."""
    return audit_subject(open_subject(run_dir), config, baseline=baseline)


def audit_subject(subject: Subject, config: AuditConfig, *, baseline: Mapping[str, Any] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    log.info("audit of %s: ranking %d test users with the model (one evaluation pass), then the checks",
             subject.run.root, len(subject.test.users))
    evaluated = evaluation_pass(scorer(subject.model, subject.data.n_users), subject.test,
                                mask_history=subject.mask_history, top_k=config.top_k)
    evaluated_at = time.perf_counter()
    audits = compute_audits(subject, evaluated, config)
    verdict = gate(audits, config, baseline=baseline)
    finished = time.perf_counter()
    train = subject.document.get("config") or {}
    document = {
        "run": str(subject.run.root), "model": subject.document.get("model"), "data": subject.data.source,
        "federated": "federation.partition" in train, "dp": privacy_mode(train.get("dp")).stores_add_noise,
        "protocol": "full-ranking-leave-one-out test split; one evaluation pass",
        "config": config.to_dict(), **verdict, **audits,
        "notes": [DP_NOTE] if privacy_mode(train.get("dp")).stores_add_noise else [],
        "baseline": None if baseline is None else baseline.get("run"),
        "seconds": {"evaluation_pass": round(evaluated_at - started, 3), "audits": round(finished - evaluated_at, 3)},
    }
    write_audit(subject.run, document)
    log.info("audit of %s: %s", subject.run.root, verdict_line(document))
    return document
