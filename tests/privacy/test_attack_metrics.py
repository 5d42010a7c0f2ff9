"""Attack scores and the empirical epsilon lower bound agree with brute force and known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedrec.privacy.attack_metrics import (
    EmpiricalEpsilon,
    best_epsilon_lower_bound,
    clopper_pearson,
    epsilon_lower_bound,
    prosecutor_risk,
    roc_auc,
    split_epsilon_lower_bound,
    tpr_at_fpr,
)


def brute_force_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    above = (positives[:, None] > negatives[None, :]).sum()
    tied = (positives[:, None] == negatives[None, :]).sum()
    return (above + 0.5 * tied) / (positives.size * negatives.size)


def test_auc_of_perfectly_separated_scores_is_one_and_reversed_is_zero():
    assert roc_auc([0.6, 0.7, 0.9], [0.1, 0.2, 0.5]) == 1.0
    assert roc_auc([0.1, 0.2], [0.6, 0.7, 0.9]) == 0.0


def test_auc_of_identical_distributions_is_near_half():
    rng = np.random.default_rng(0)
    auc = roc_auc(rng.normal(size=200_000), rng.normal(size=200_000))
    assert abs(auc - 0.5) < 0.005


def test_auc_of_all_tied_scores_is_exactly_half():
    assert roc_auc([0.3] * 7, [0.3] * 4) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Few distinct values so ties are common.
    positives = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)
    negatives = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)
    assert roc_auc(positives, negatives) == pytest.approx(brute_force_auc(positives, negatives), abs=1e-12)


def test_auc_handles_a_million_scores():
    rng = np.random.default_rng(1)
    auc = roc_auc(rng.normal(1.0, 1.0, size=1_000_000), rng.normal(0.0, 1.0, size=1_000_000))
    # Two unit normals one std apart: AUC = Phi(1 / sqrt(2)) = 0.7602.
    assert auc == pytest.approx(0.7602, abs=0.002)


def test_auc_rejects_an_empty_side():
    with pytest.raises(ValueError, match="positive scores are empty"):
        roc_auc([], [0.1])
    with pytest.raises(ValueError, match="negative scores are empty"):
        roc_auc([0.1], [])


def test_tpr_at_fpr_on_a_hand_made_example():
    positives = [0.9, 0.8, 0.7, 0.3]
    negatives = [0.85, 0.6, 0.5, 0.4, 0.2]
    # t = 0.9 flags one positive and no negative; t = 0.85 costs FPR 0.2.
    assert tpr_at_fpr(positives, negatives, 0.0) == 0.25
    assert tpr_at_fpr(positives, negatives, 0.19) == 0.25
    # t = 0.7: 3 of 4 positives, 1 of 5 negatives.
    assert tpr_at_fpr(positives, negatives, 0.2) == 0.75
    assert tpr_at_fpr(positives, negatives, 0.8) == 1.0


def test_tpr_at_fpr_does_not_split_ties():
    # The top positive ties with a negative; flagging it flags the negative too.
    assert tpr_at_fpr([0.9, 0.5], [0.9, 0.1], 0.0) == 0.0
    assert tpr_at_fpr([0.9, 0.5], [0.9, 0.1], 0.5) == 1.0


def test_clopper_pearson_matches_known_intervals():
    lower, upper = clopper_pearson(0, 10)
    assert lower == 0.0
    assert upper == pytest.approx(0.3085, abs=1e-4)
    assert clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    lower, upper = clopper_pearson(10, 10)
    assert upper == 1.0
    assert lower == pytest.approx(1 - 0.3085, abs=1e-4)


def test_clopper_pearson_narrows_with_lower_confidence():
    wide = clopper_pearson(30, 100, 0.99)
    narrow = clopper_pearson(30, 100, 0.8)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]


def test_epsilon_bound_is_zero_for_a_useless_attack():
    assert epsilon_lower_bound(300, 1000, 300, 1000, delta=1e-5) == 0.0
    assert epsilon_lower_bound(0, 1000, 0, 1000, delta=1e-5) == 0.0


def test_epsilon_bound_grows_with_a_stronger_attack():
    weak = epsilon_lower_bound(600, 1000, 400, 1000, delta=1e-5)
    strong = epsilon_lower_bound(800, 1000, 200, 1000, delta=1e-5)
    assert 0.0 < weak < strong


def test_epsilon_bound_uses_the_low_tail_form_when_few_members_are_missed():
    # TPR 0.999, FPR 0.5: ln(TPR / FPR) is only ln 2, but missing 1 member in 1000 while passing
    # half the non-members proves much more through ln((1 - FPR) / (1 - TPR)).
    assert epsilon_lower_bound(999, 1000, 500, 1000, delta=0.0) > 3.0


def test_epsilon_bound_is_zero_for_an_inverted_attack():
    # Members scoring lower is not credited; callers negate such scores.
    assert epsilon_lower_bound(200, 1000, 800, 1000, delta=0.0) == 0.0


def test_epsilon_bound_is_tight_but_sound_for_randomized_response():
    epsilon = 2.0
    truthful = math.exp(epsilon) / (1.0 + math.exp(epsilon))
    trials = 100_000
    rng = np.random.default_rng(7)
    # Members report 1 with probability e^eps / (1 + e^eps), non-members with 1 / (1 + e^eps).
    true_positives = int(rng.binomial(trials, truthful))
    false_positives = int(rng.binomial(trials, 1.0 - truthful))
    bound = epsilon_lower_bound(true_positives, trials, false_positives, trials, delta=1e-5)
    assert 1.5 < bound < epsilon


def test_best_bound_finds_the_separating_threshold():
    rng = np.random.default_rng(3)
    positives = rng.normal(4.0, 1.0, size=5000)
    negatives = rng.normal(0.0, 1.0, size=5000)
    best = best_epsilon_lower_bound(positives, negatives, delta=1e-5)
    assert isinstance(best, EmpiricalEpsilon)
    assert best.epsilon > 2.0
    assert best.epsilon == epsilon_lower_bound(
        int((positives >= best.threshold).sum()), 5000, int((negatives >= best.threshold).sum()), 5000, 1e-5
    )
    assert best.tpr > best.fpr


def test_split_bound_is_reproducible_and_no_higher_than_in_sample():
    rng = np.random.default_rng(4)
    positives = rng.normal(2.0, 1.0, size=4000)
    negatives = rng.normal(0.0, 1.0, size=4000)
    first = split_epsilon_lower_bound(positives, negatives, delta=1e-5, seed=11)
    again = split_epsilon_lower_bound(positives, negatives, delta=1e-5, seed=11)
    other = split_epsilon_lower_bound(positives, negatives, delta=1e-5, seed=12)
    assert first == again
    assert first != other
    assert 0.0 < first.epsilon <= best_epsilon_lower_bound(positives, negatives, delta=1e-5).epsilon + 0.5


def test_prosecutor_risk_of_a_small_release():
    risk = prosecutor_risk([1, 5, 5, 10])
    assert risk["worst"] == 1.0
    assert risk["average"] == pytest.approx(4 / 21)
    assert risk["records_at_risk_above"] == pytest.approx({0.2: 1 / 21, 0.1: 11 / 21, 0.05: 1.0})


@pytest.mark.parametrize("sizes", [[], [3, 0], [2, 1.5]])
def test_prosecutor_risk_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError):
        prosecutor_risk(sizes)
