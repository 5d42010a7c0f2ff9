"""The federated audit: the release audit of the reported model when the server holds no
evaluation data. Two QUERY messages on the Grid, after the last round:

1. ``query.audit_counts``: each client answers how many of its test users have each
   train-history length and, without DP, its training interactions per item. The server
   sums them: the activity threshold is then the same global quantile a central audit takes
   (``activity_threshold`` on the summed histogram), and the summed counts are the exact
   training popularity. Under DP no counts are asked: popularity is the DP prior released
   and accounted in round 0 (``prior_round``), or there is none and the popularity audits
   are reported as unmeasured.
2. ``query.audit``: the model, the threshold and the popularity go out; each client ranks
   its own test users as its federated evaluation does (MF with its private user vectors)
   and answers only addable sums (``fedrec.release.audit_run.audit_sums``): per-group
   rank histograms with Poisson-bootstrap replicates keyed by the customers' raw ids,
   exposure per item, the model's and the popularity baseline's utility. The server adds
   them over the union of the labels the clients name, suppresses groups below the minimum
   size on the global count, and finishes and gates them as a central audit does
   (``finish_audits``). In simulation the result equals ``fedrec audit DIR``.

Under --secagg or DP no store's sums reach the server alone (``secure_audit_sums``): the
counts are SecAgg+ sums, the audit query carries each grouping's labels fixed before it
(fedrec.release.fixed_vocabularies: activity, the stores' names, fedrec's profile columns; a
column they cannot list is left out and named), each store answers only its sums' layout,
and a SecAgg+ exchange adds the values up. The result then equals a central audit's on
the groupings it keeps, within the sum's rounding.

Why a first query rather than per-length group sums merged at the server: it is needed
anyway for the popularity the baseline ranks by (without DP), it gives the exact threshold
whatever the longest history (a length vocabulary would have to cap it), and clients send
two activity groups' replicates instead of one set per history length (200 replicates x
11 ranks each). What the server learns in clear mode: per-length user counts and per-item
training counts (not under DP), and per client the sums of every group it holds, small
groups included: the minimum group size applies to what the audit reports, not to what a
client sends (fedrec.federation.wire_contract lists them; the privacy report too). Under
--secagg or DP: only the sums over the stores, whose store grouping is still per store
(its purpose), and each store's test-user count.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrec.audit.gate import gate
from fedrec.audit.groupings import activity_threshold
from fedrec.audit.reply import add_by_label_union, unflatten
from fedrec.audit.sums import SPEC, AuditSums
from fedrec.config import AuditConfig, FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.client import shared_dataset
from fedrec.federation.nodes import wait_for_nodes
from fedrec.federation.secure_rounds import secure_sum
from fedrec.federation.wire_contract import SUMMED_SECURELY, mode_of
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.popularity_prior import released_prior
from fedrec.release.audit_run import DP_PRIOR, NO_PRIOR, TRAINING_COUNTS, finish_audits
from fedrec.release.fixed_vocabularies import fixed_vocabularies

log = logging.getLogger("fedrec.server")

FEDERATED_DP_NOTE = (
    "The run trained under differential privacy. Item popularity here is only what was released and accounted (the "
    "DP prior of round 0; none when the run released none), but the per-group sums over the stores' test users "
    "(added by SecAgg+, so no store's own) are covered by no DP release and no ledger. Its figures stay with the "
    "operator and are advisory: the audit changes only the verdict, never the reported model."
)


def summed_lengths(histograms: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise sum of per-length user counts of different lengths (a client's longest
    history bounds its array)."""
    total = np.zeros(max((len(h) for h in histograms), default=0), dtype=np.int64)
    for histogram in histograms:
        total[: len(histogram)] += np.asarray(histogram, dtype=np.int64)
    return total


def threshold_of(length_counts: np.ndarray) -> int:
    """The activity threshold of the users a per-length count describes: ``activity_threshold``
    of the lengths themselves, so it is the central audit's by construction."""
    return activity_threshold(np.repeat(np.arange(len(length_counts)), length_counts))


def grouping_order(orders: Sequence[Sequence[str]]) -> list[str]:
    """Grouping names in the order the clients report them (first seen first)."""
    return list(dict.fromkeys(name for order in orders for name in order))


def audit_popularity(train: TrainConfig, run_dir: Path, item_counts: Sequence[np.ndarray]) -> tuple[np.ndarray | None, str]:
    """(popularity, its source) for the baseline and the popularity audits: the summed exact
    training counts without DP, the released prior under DP, else (None, why)."""
    if not privacy_mode(train.dp).stores_add_noise:
        return np.sum(item_counts, axis=0), TRAINING_COUNTS
    prior = released_prior(run_dir)
    return (prior, DP_PRIOR) if prior is not None else (None, NO_PRIOR)


def federated_audit(grid: Grid, train: TrainConfig, federation: FederationConfig, state: Mapping[str, torch.Tensor],
                    message_config: ConfigRecord, config: AuditConfig, *, run_dir: Path, context: Context | None = None,
                    ) -> tuple[dict[str, Any], np.ndarray | None, str]:
    """The audit document of the model ``state`` (same shape as ``fedrec audit``'s), from sums
    the clients compute on their own test users, and the popularity it used with its source
    (what the release's fallback ranking may reuse); nothing is written here. Under --secagg
    (``context``: the ServerApp's) the item counts are summed by SecAgg+."""
    started = time.perf_counter()
    secure = mode_of(message_config) in SUMMED_SECURELY
    nodes = wait_for_nodes(grid, federation.min_available, federation.round_timeout)
    stores_add_noise = privacy_mode(train.dp).stores_add_noise
    log.info("release gate, query 1 of 2: %d clients count their test users' history lengths%s", len(nodes),
             "" if stores_add_noise else " and their training items")
    counted = _ask(grid, nodes, wire.AUDIT_COUNTS, RecordDict({wire.CONFIG: message_config}), federation.round_timeout)
    counted_nodes = [m.metadata.src_node_id for m in counted]
    if secure:  # the length histogram as SecAgg+ sums it (LENGTH_BINS lengths): no store's own
        lengths = secure_sum(grid, context, federation, counted_nodes, message_config, wire.HISTORY_LENGTHS)[0]
    else:
        lengths = summed_lengths([m.content[wire.ARRAYS][wire.HISTORY_LENGTHS].numpy() for m in counted])
    threshold = threshold_of(lengths)
    if secure and not stores_add_noise:  # the item counts as SecAgg+ sums them: no store's own reaches the server
        item_counts = [secure_sum(grid, context, federation, counted_nodes, message_config, wire.ITEM_COUNTS)[0]]
    else:
        item_counts = [m.content[wire.ARRAYS][wire.ITEM_COUNTS].numpy() for m in counted if not stores_add_noise]
    popularity, source = audit_popularity(train, run_dir, item_counts)
    counted_at = time.perf_counter()
    settings = {wire.AUDIT_TOP_K: config.top_k, wire.AUDIT_N_BOOT: config.n_boot, wire.AUDIT_SEED: config.seed,
                wire.AUDIT_THRESHOLD: threshold}
    if secure:  # every store lays its sums out alike, on labels fixed before it answers
        stores = [str(m.content[wire.AUDIT][wire.AUDIT_STORE]) for m in counted if wire.AUDIT_STORE in m.content[wire.AUDIT]]
        settings[wire.AUDIT_VOCABULARIES] = json.dumps(fixed_vocabularies(stores))
    content = RecordDict({wire.ARRAYS: ArrayRecord(dict(state)), wire.CONFIG: message_config,
                          wire.AUDIT: ConfigRecord(settings)})
    if popularity is not None:
        content[wire.POPULARITY] = ArrayRecord({wire.POPULARITY: Array(np.asarray(popularity, dtype=np.float64))})
    log.info("release gate, query 2 of 2: %d clients rank their test users with the reported model (query 1: %.1f s)",
             len(counted), counted_at - started)
    answered = _ask(grid, [m.metadata.src_node_id for m in counted], wire.AUDIT, content, federation.round_timeout)
    answered.sort(key=lambda m: str(m.content[wire.AUDIT][wire.AUDIT_CLIENT]))  # a fixed order of float sums
    audited_at = time.perf_counter()
    replies = [{k: a.numpy() for k, a in m.content[wire.ARRAYS].items()} for m in answered]
    if secure:  # the values only as SecAgg+ sums them: no store's own sums reach the server
        clip = 2.0 * max(int(m.content[wire.METRICS][wire.NUM_USERS]) for m in counted) + 32.0
        sums, partial = secure_audit_sums(grid, context, federation, answered, replies, state, popularity, settings,
                                          message_config, clip=clip)
    else:
        sums, partial = add_by_label_union(replies)
    catalog = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
    audits = finish_audits(sums, catalog, popularity=popularity, popularity_source=source, config=config,
                           order=grouping_order([list(m.content[wire.AUDIT][wire.AUDIT_GROUPINGS]) for m in answered]),
                           why_no_popularity=source, holdout=federation.audit_holdout)
    audits["skipped_audits"] += [{"audit": key, "reason": "not every client sent these sums (a client without that "
                                  "column); part of the population is not the whole"} for key in partial]
    left_out = grouping_order([list(m.content[wire.AUDIT].get(wire.AUDIT_LEFT_OUT, [])) for m in answered])
    audits["skipped_audits"] += [{"audit": f"group-utility/{name}", "reason": "its labels are not fixed before the "
                                  "query (fedrec.release.fixed_vocabularies), and under --secagg or DP the stores sum "
                                  "their audit sums securely, on fixed labels only"} for name in left_out]
    verdict = gate(audits, config)
    clients = {"asked": len(nodes), "counted": len(counted), "answered": len(answered)}
    return {
        "run": str(run_dir), "model": train.model, "data": train.data, "federated": True, "dp": stores_add_noise,
        "protocol": (f"federated: per-group sums over each client's own full-ranking leave-one-out test users, "
                     f"summed at the server from {len(answered)} of {len(nodes)} clients"),
        "clients": clients,
        "config": config.to_dict(), **verdict, **audits,
        "notes": [FEDERATED_DP_NOTE] if stores_add_noise else [],
        "seconds": {"counts_query": round(counted_at - started, 3), "audit_query": round(audited_at - counted_at, 3),
                    "audits": round(time.perf_counter() - audited_at, 3)},
    }, popularity, source


def secure_audit_sums(grid: Grid, context: Context | None, federation: FederationConfig, answered: Sequence[Message],
                      layouts: Sequence[Mapping[str, np.ndarray]], state: Mapping[str, torch.Tensor],
                      popularity: np.ndarray | None, settings: Mapping[str, Any], message_config: ConfigRecord, *,
                      clip: float) -> tuple[dict[str, AuditSums], list[str]]:
    """({key: summed sums}, [keys some store lacked]): the sums every store laid out alike
    (``layouts``: their specs), added by SecAgg+ over the stores that answered. ``clip``
    bounds every entry of a store's vector: a count is at most its test users, a bootstrap
    cell their Poisson(1) weights (at most twice as many plus 32, but with negligible
    probability); rounding adds at most 2 x clip / Q per store and entry (Q: sum_quantization,
    2^30 for 3 stores), and counts are rounded back to integers (exact while that stays below 1/2)."""
    keyed = [{name[: -len(SPEC) - 1]: bytes(values) for name, values in found.items() if name.endswith(f"/{SPEC}")}
             for found in layouts]
    shared = set.intersection(*(set(keys) for keys in keyed))
    keys = sorted(key for key in shared if len({found[key] for found in keyed}) == 1)
    partial = sorted(set.union(*(set(found) for found in keyed)) - set(keys))
    arrays = dict(state)
    if popularity is not None:  # what the baseline ranks by travels beside the audited model
        arrays[wire.POPULARITY] = torch.from_numpy(np.asarray(popularity, dtype=np.float64))
    exchange = ConfigRecord({**message_config, wire.AUDIT_SETTINGS: json.dumps({**settings, wire.AUDIT_KEYS: keys})})
    total, _ = secure_sum(grid, context, federation, [m.metadata.src_node_id for m in answered], exchange,
                          wire.AUDIT_SUMS, clip=clip, arrays=ArrayRecord(arrays))
    return unflatten(total, layouts[0], keys), partial


def _ask(grid: Grid, nodes: Sequence[int], action: str, content: RecordDict, timeout: float) -> list[Message]:
    """Send one named query to every node; the replies without error (at least one)."""
    messages = [Message(content=content, dst_node_id=node, message_type=f"{MessageType.QUERY}.{action}")
                for node in nodes]
    answers = list(grid.send_and_receive(messages, timeout=timeout))
    replies = [m for m in answers if not m.has_error()]
    for failed in (m for m in answers if m.has_error()):
        log.warning("audit: client %s did not answer %s: %s", failed.metadata.src_node_id, action, failed.error.reason)
    if not replies:
        reason = next((m.error.reason for m in answers if m.has_error()), "no reply within the round timeout")
        raise ConfigError(f"no client answered the audit's {action} query ({reason}); check the clients' logs, or "
                          "train with release-gate false and audit the model where the data is (fedrec audit DIR).")
    return replies
