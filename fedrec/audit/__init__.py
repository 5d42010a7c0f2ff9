"""Fairness and bias audits of a model's top-k lists (issue 16), pure functions over arrays.

Inputs come from one evaluation pass (no second ranking): each user's top-k item ids
(U, K) and the 0-based full-ranking rank of their held-out item (U,), plus per-user group
labels and per-item counts. Each audit is computed as addable sums (a client computes its
share, the server adds them; central is one client) and finished into a JSON-able dict.
Modules, one idea each:

    sums           the addable-sums base class and its wire form (a dict of numpy arrays)
    bootstrap      Poisson(1) bootstrap weights seeded per customer, percentile intervals
    groupings      activity level, store and attribute labels; shared vocabularies
    group_utility  HR@k / NDCG@k per group with intervals, gap (difference, ratio)
    exposure       per-item position-weighted exposure of the top-k lists; Gini
    popularity     ARP vs consumed, long-tail share, coverage, exposure Gini
    providers      brand / category exposure share vs target share, AWRF
    reply          one client reply carrying all sums; adding replies on the server

Definitions, ranges and directions: docs/audit.md.
"""

from fedrec.audit.bootstrap import customer_hashes, poisson_weights
from fedrec.audit.exposure import ExposureSums, exposure_sums, gini, position_weights
from fedrec.audit.group_utility import GroupUtilitySums, finish_group_utility, group_utility_sums
from fedrec.audit.groupings import (
    ACTIVITY_LABELS, activity_groups, activity_threshold, attribute_groups, encode, vocabulary,
)
from fedrec.audit.popularity import finish_popularity, interaction_counts, short_head
from fedrec.audit.providers import finish_provider_exposure, js_divergence
from fedrec.audit.reply import add_replies, pack, unpack
from fedrec.audit.sums import AuditSums

__all__ = [
    "ACTIVITY_LABELS", "AuditSums", "ExposureSums", "GroupUtilitySums", "activity_groups", "activity_threshold",
    "add_replies", "attribute_groups", "customer_hashes", "encode", "exposure_sums", "finish_group_utility",
    "finish_popularity", "finish_provider_exposure", "gini", "group_utility_sums", "interaction_counts",
    "js_divergence", "pack", "poisson_weights", "position_weights", "short_head", "unpack", "vocabulary",
]
