"""HR@10 / NDCG@10 per group, their gap, Poisson-bootstrap intervals, and federated sums."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fedrec.audit.bootstrap import customer_hashes, poisson_weights
from fedrec.audit.group_utility import finish_group_utility, group_utility_sums
from fedrec.audit.groupings import activity_groups, activity_threshold, vocabulary
from fedrec.errors import DataError
from fedrec.metrics import hit_rate, ndcg
from tests.audit.conftest import make_population

# Group A: ranks 0, 3, 12 -> two hits; group B: ranks 1 and 10 -> rank 10 is NOT in the top 10.
RANKS = np.array([0, 3, 12, 1, 10])
GROUPS = np.array(["A", "A", "A", "B", "B"])
KEYS = ["u1", "u2", "u3", "u4", "u5"]


def test_hr_and_ndcg_per_group_match_a_hand_computation():
    sums = group_utility_sums(RANKS, GROUPS, KEYS, labels=("A", "B"), name="toy", n_boot=0)

    report = finish_group_utility(sums, min_group_size=1)

    a, b = report["groups"]["A"], report["groups"]["B"]
    assert a["users"] == 3 and b["users"] == 2
    assert a["hr@10"] == pytest.approx(2 / 3)
    assert b["hr@10"] == pytest.approx(1 / 2)  # rank < k: a rank-10 target is a miss
    # NDCG: gain 1/log2(rank + 2) for 0-based ranks below 10, ideal DCG 1.
    assert a["ndcg@10"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(5)) / 3)  # 0.47689
    assert b["ndcg@10"] == pytest.approx((1 / math.log2(3)) / 2)  # 0.31546
    assert a["hr@10_ci"] is None  # no replicates, no interval


def test_the_gap_is_max_minus_min_and_min_over_max():
    sums = group_utility_sums(RANKS, GROUPS, KEYS, labels=("A", "B"), name="toy", n_boot=0)

    gaps = finish_group_utility(sums, min_group_size=1)["gaps"]

    assert gaps["hr@10"]["difference"] == pytest.approx(2 / 3 - 1 / 2)
    assert gaps["hr@10"]["ratio"] == pytest.approx((1 / 2) / (2 / 3))  # 0.75
    ndcg_a, ndcg_b = (1 + 1 / math.log2(5)) / 3, (1 / math.log2(3)) / 2
    assert gaps["ndcg@10"]["difference"] == pytest.approx(ndcg_a - ndcg_b)
    assert gaps["ndcg@10"]["ratio"] == pytest.approx(ndcg_b / ndcg_a)
    assert (gaps["hr@10"]["worst"], gaps["hr@10"]["best"]) == ("B", "A")


def test_one_group_over_everyone_equals_fedrec_metrics(population):
    everyone = np.full(len(population.ranks), "all")

    report = finish_group_utility(
        group_utility_sums(population.ranks, everyone, population.keys, labels=("all",), name="all", n_boot=0),
        min_group_size=1,
    )

    ranks = torch.from_numpy(population.ranks)
    assert report["groups"]["all"]["hr@10"] == pytest.approx(hit_rate(ranks, 10), abs=1e-15)
    assert report["groups"]["all"]["ndcg@10"] == pytest.approx(ndcg(ranks, 10), abs=1e-15)
    assert report["gaps"]["hr@10"] is None  # one group: no gap


def test_a_group_below_the_minimum_size_is_suppressed_and_left_out_of_the_gap():
    ranks, groups = np.append(RANKS, 0), np.append(GROUPS, "C")  # C: one user, a perfect hit

    report = finish_group_utility(
        group_utility_sums(ranks, groups, [*KEYS, "u6"], labels=("A", "B", "C"), name="toy", n_boot=0),
        min_group_size=2,
    )

    assert list(report["groups"]) == ["A", "B"]
    assert report["suppressed"] == ["C"]
    assert report["gaps"]["hr@10"]["best"] == "A"  # C's HR of 1 would have been best


def test_intervals_are_percentiles_of_the_replicates_weighted_by_hand():
    n_boot = 3
    weights = poisson_weights(customer_hashes(KEYS), seed=7, n_boot=n_boot).astype(float)  # (5, 3)
    hits = (RANKS < 10).astype(float)
    in_a = GROUPS == "A"

    report = finish_group_utility(
        group_utility_sums(RANKS, GROUPS, KEYS, labels=("A", "B"), name="toy", n_boot=n_boot, seed=7),
        min_group_size=1, quantiles=(0.0, 100.0),
    )

    drawn = [b for b in range(n_boot) if weights[in_a, b].sum() > 0]  # a replicate may draw no one from A
    replicates = [(weights[in_a, b] @ hits[in_a]) / weights[in_a, b].sum() for b in drawn]
    assert report["groups"]["A"]["hr@10_ci"] == pytest.approx([min(replicates), max(replicates)])


def test_the_interval_holds_the_estimate_and_narrows_with_more_users():
    small, large = make_population(200, seed=1), make_population(3000, seed=1)

    def interval(pop):
        groups = np.full(len(pop.ranks), "all")
        entry = finish_group_utility(group_utility_sums(pop.ranks, groups, pop.keys, labels=("all",), name="all"),
                                     min_group_size=1)["groups"]["all"]
        return entry["hr@10"], entry["hr@10_ci"]

    (hr_small, (lo_small, hi_small)), (hr_large, (lo_large, hi_large)) = interval(small), interval(large)
    assert lo_small <= hr_small <= hi_small and lo_large <= hr_large <= hi_large
    assert hi_large - lo_large < (hi_small - lo_small) / 2  # ~ 1/sqrt(n): 15x the users, ~1/4 the width


@pytest.mark.parametrize("split_seed", [0, 1, 2])
def test_three_clients_summed_equal_all_users_at_once_exactly(population, split_seed):
    lengths = np.array([len(h) for h in population.histories])
    threshold = activity_threshold(lengths)
    groupings = {
        "activity": (activity_groups(lengths, threshold=threshold), ("active", "rest")),
        "store": (population.stores, vocabulary(population.stores)),
    }
    client_of = np.random.default_rng(split_seed).integers(0, 3, len(population.ranks))

    for name, (groups, labels) in groupings.items():
        def sums(rows):
            return group_utility_sums(population.ranks[rows], groups[rows], population.keys[rows],
                                      labels=labels, name=name, n_boot=50, seed=11)

        central = sums(np.arange(len(population.ranks)))
        federated = sum(sums(np.flatnonzero(client_of == c)) for c in range(3))

        assert np.array_equal(federated.rank_counts, central.rank_counts)
        assert np.array_equal(federated.boot_rank_counts, central.boot_rank_counts)
        finished = finish_group_utility(federated, min_group_size=20)
        assert finished == finish_group_utility(central, min_group_size=20)  # bit for bit, intervals too
        assert json.loads(json.dumps(finished, allow_nan=False)) == finished


def test_sums_built_with_another_seed_do_not_add():
    one = group_utility_sums(RANKS, GROUPS, KEYS, labels=("A", "B"), name="toy", n_boot=5, seed=1)
    other = group_utility_sums(RANKS, GROUPS, KEYS, labels=("A", "B"), name="toy", n_boot=5, seed=2)

    with pytest.raises(DataError, match="seed"):
        one + other


def test_a_label_outside_the_shared_vocabulary_is_refused():
    with pytest.raises(DataError, match="not in the vocabulary"):
        group_utility_sums(RANKS, np.array(["A", "A", "A", "B", "Z"]), KEYS, labels=("A", "B"), name="toy")
