"""Scores for privacy attacks, and the empirical epsilon lower bound they imply.

A DP guarantee is an upper bound proved on paper; an empirical privacy audit checks it from
the other side by running attacks (membership inference: "was this user in training?";
item leakage: "did this user interact with this item?") and asking how much privacy they
provably break. This module turns an attack's scores into those numbers:

* ``roc_auc`` and ``tpr_at_fpr`` describe how well an attack separates members from
  non-members; TPR at a low FPR is the figure Carlini et al. 2022 ("Membership Inference
  Attacks From First Principles") recommend, since the average case hides rare, confident hits.
* ``epsilon_lower_bound`` turns an attack's counts into an epsilon that the mechanism cannot
  be below, at a stated confidence (Jagielski, Ullman & Oprea 2020, "Auditing Differentially
  Private Machine Learning: How Private is Private SGD?"; Nasr et al. 2021, "Adversary
  Instantiation: Lower Bounds for Differentially Private Machine Learning"). If it exceeds the
  accountant's epsilon, the implementation or the accounting is broken.
* ``prosecutor_risk`` scores a k-anonymous release by the re-identification risk of an
  attacker who knows their target is in it (El Emam & Dankar 2008, "Protecting Privacy Using
  k-Anonymity").

Pure numpy/scipy, so audits and tests can call it without a model or torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

# Risk levels of the prosecutor report: 0.2, 0.1 and 0.05 are a class of fewer than 5, 10
# and 20 records, the usual k-anonymity thresholds (El Emam & Dankar 2008).
RISK_THRESHOLDS = (0.2, 0.1, 0.05)


@dataclasses.dataclass(frozen=True)
class EmpiricalEpsilon:
    """An epsilon lower bound and the attack that reached it: flag "score >= threshold" as a
    member; ``tpr`` and ``fpr`` are the observed rates at that threshold."""

    epsilon: float
    threshold: float
    tpr: float
    fpr: float


def _scores(values: Sequence[float] | np.ndarray, side: str) -> np.ndarray:
    """1-D float64 copy of one side's scores; an empty side has no rate to estimate."""
    scores = np.asarray(values, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError(f"{side} scores are empty; an attack needs at least one member and one non-member score.")
    if np.isnan(scores).any():
        raise ValueError(f"{side} scores contain NaN; NaN has no order, so replace it with a real score first.")
    return scores


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence}.")


def _check_delta(delta: float) -> None:
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must lie in [0, 1) (e.g. 1e-5), got {delta}.")


def _counts_at_or_above(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_scores`` are >= each threshold: the flagged count of "score >= t"."""
    return sorted_scores.size - np.searchsorted(sorted_scores, thresholds, side="left")


def roc_auc(
    positive_scores: Sequence[float] | np.ndarray,
    negative_scores: Sequence[float] | np.ndarray,
) -> float:
    """Probability that a random positive (member) scores above a random negative, ties counting
    one half: 0.5 is guessing, 1.0 separates perfectly.

    Computed as the Mann-Whitney U statistic from average ranks, O(n log n), so an audit can
    score a million candidates without the O(n^2) pairwise count it equals.
    """
    positives = _scores(positive_scores, "positive")
    negatives = _scores(negative_scores, "negative")
    ranks = stats.rankdata(np.concatenate([positives, negatives]), method="average")
    n_pos, n_neg = positives.size, negatives.size
    u_statistic = float(ranks[:n_pos].sum()) - n_pos * (n_pos + 1) / 2.0
    return u_statistic / (float(n_pos) * float(n_neg))


def tpr_at_fpr(
    positive_scores: Sequence[float] | np.ndarray,
    negative_scores: Sequence[float] | np.ndarray,
    fpr: float,
) -> float:
    """Largest true-positive rate over thresholds whose false-positive rate is at most ``fpr``.

    An attack that is right about a few members with near-certainty is a real leak even when
    its AUC is near 0.5, so audits report TPR at a low FPR such as 0.01 (Carlini et al. 2022).
    A threshold ``t`` flags "score >= t"; tied scores are all flagged or none, so an attack
    cannot split a tie to squeeze under the FPR budget.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1] (e.g. 0.01), got {fpr}.")
    positives = np.sort(_scores(positive_scores, "positive"))
    negatives = np.sort(_scores(negative_scores, "negative"))
    # Only observed scores change the counts; flagging nothing (TPR = FPR = 0) is always allowed.
    candidates = np.unique(np.concatenate([positives, negatives]))
    false_positive_rates = _counts_at_or_above(negatives, candidates) / negatives.size
    true_positive_rates = _counts_at_or_above(positives, candidates) / positives.size
    allowed = false_positive_rates <= fpr
    return float(true_positive_rates[allowed].max()) if allowed.any() else 0.0


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) binomial interval for a success rate.

    Exact rather than normal-approximate because audits care about rates near 0 and 1, where
    the normal interval is too narrow and an epsilon bound built on it would overclaim. Each
    end holds on its own at one-sided level ``1 - (1 - confidence) / 2``.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}.")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must lie in [0, trials={trials}], got {successes}.")
    _check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    lower = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    upper = 1.0 if successes == trials else float(stats.beta.ppf(1.0 - tail, successes + 1, trials - successes))
    return lower, upper


def epsilon_lower_bound(
    true_positives: int,
    positives: int,
    false_positives: int,
    negatives: int,
    delta: float,
    confidence: float = 0.95,
) -> float:
    """Epsilon that a mechanism must exceed, at ``confidence``, given an attack's counts.

    An (epsilon, delta)-DP mechanism limits every membership test (Kairouz et al. 2015; used for
    auditing by Jagielski et al. 2020 and Nasr et al. 2021) to

        TPR <= exp(epsilon) * FPR + delta   and   1 - FPR <= exp(epsilon) * (1 - TPR) + delta,

    so an attack observed at (TPR, FPR) proves

        epsilon >= max( ln((TPR - delta) / FPR),  ln((1 - delta - FPR) / (1 - TPR)),  0 ).

    The observed rates are only estimates, so the bound uses the pessimistic ends of their
    Clopper-Pearson intervals: TPR_low (the lower end for TPR) and FPR_high (the upper end for
    FPR). Each end holds at one-sided level 1 - (1 - confidence) / 2, so by the union bound both
    hold together, and the returned epsilon is a true lower bound, with probability at least
    ``confidence``. Returns 0.0 where no positive bound follows (e.g. TPR_low <= delta). An attack
    that flags non-members more often than members earns nothing here: negate its scores first.
    """
    _check_delta(delta)
    tpr_low, _ = clopper_pearson(true_positives, positives, confidence)
    _, fpr_high = clopper_pearson(false_positives, negatives, confidence)
    bounds = [0.0]
    if tpr_low > delta and fpr_high > 0.0:
        bounds.append(math.log((tpr_low - delta) / fpr_high))
    if 1.0 - delta - fpr_high > 0.0 and tpr_low < 1.0:
        bounds.append(math.log((1.0 - delta - fpr_high) / (1.0 - tpr_low)))
    return max(bounds)


def _best_threshold(
    positives: np.ndarray,
    negatives: np.ndarray,
    delta: float,
    confidence: float,
    thresholds: int,
) -> EmpiricalEpsilon:
    sorted_positives, sorted_negatives = np.sort(positives), np.sort(negatives)
    # method="lower" keeps every candidate an observed score, so each changes the counts.
    quantiles = np.linspace(0.0, 1.0, thresholds)
    candidates = np.unique(np.quantile(np.concatenate([positives, negatives]), quantiles, method="lower"))
    true_positive_counts = _counts_at_or_above(sorted_positives, candidates)
    false_positive_counts = _counts_at_or_above(sorted_negatives, candidates)
    best: EmpiricalEpsilon | None = None
    for threshold, tp, fp in zip(candidates, true_positive_counts, false_positive_counts):
        epsilon = epsilon_lower_bound(int(tp), positives.size, int(fp), negatives.size, delta, confidence)
        if best is None or epsilon > best.epsilon:
            best = EmpiricalEpsilon(
                epsilon=epsilon,
                threshold=float(threshold),
                tpr=int(tp) / positives.size,
                fpr=int(fp) / negatives.size,
            )
    assert best is not None  # candidates always holds at least one observed score
    return best


def best_epsilon_lower_bound(
    positive_scores: Sequence[float] | np.ndarray,
    negative_scores: Sequence[float] | np.ndarray,
    delta: float,
    confidence: float = 0.95,
    thresholds: int = 100,
) -> EmpiricalEpsilon:
    """Largest ``epsilon_lower_bound`` over up to ``thresholds`` candidate thresholds (quantiles
    of all scores), with the threshold that reached it.

    Caution: choosing the threshold on the same samples that then evaluate it is a multiple
    comparison, so this bound is optimistic (its confidence is below ``confidence``). Use it to
    explore; for a reported number use ``split_epsilon_lower_bound``, which chooses the
    threshold on one half of the samples and evaluates it on the other.
    """
    if thresholds < 1:
        raise ValueError(f"thresholds must be at least 1, got {thresholds}.")
    _check_delta(delta)
    _check_confidence(confidence)
    positives = _scores(positive_scores, "positive")
    negatives = _scores(negative_scores, "negative")
    return _best_threshold(positives, negatives, delta, confidence, thresholds)


def split_epsilon_lower_bound(
    positive_scores: Sequence[float] | np.ndarray,
    negative_scores: Sequence[float] | np.ndarray,
    delta: float,
    seed: int,
    confidence: float = 0.95,
    thresholds: int = 100,
) -> EmpiricalEpsilon:
    """Epsilon lower bound that holds at ``confidence``: a random half of each side chooses the
    threshold (``best_epsilon_lower_bound``), the other half, unseen by that choice, evaluates it.

    The returned ``tpr`` and ``fpr`` are those of the evaluation half. ``seed`` fixes the split,
    so a report can be reproduced.
    """
    positives = _scores(positive_scores, "positive")
    negatives = _scores(negative_scores, "negative")
    if positives.size < 2 or negatives.size < 2:
        raise ValueError(
            f"a split bound needs at least 2 scores per side to halve, got {positives.size} positive "
            f"and {negatives.size} negative."
        )
    if thresholds < 1:
        raise ValueError(f"thresholds must be at least 1, got {thresholds}.")
    _check_delta(delta)
    _check_confidence(confidence)
    rng = np.random.default_rng(seed)  # the auditor's own split of its scores: reproducible on purpose, no guarantee rests on it
    shuffled_positives = rng.permutation(positives)
    shuffled_negatives = rng.permutation(negatives)
    choose_pos, evaluate_pos = np.array_split(shuffled_positives, 2)
    choose_neg, evaluate_neg = np.array_split(shuffled_negatives, 2)
    chosen = _best_threshold(choose_pos, choose_neg, delta, confidence, thresholds)
    true_positives = int(np.count_nonzero(evaluate_pos >= chosen.threshold))
    false_positives = int(np.count_nonzero(evaluate_neg >= chosen.threshold))
    epsilon = epsilon_lower_bound(
        true_positives, evaluate_pos.size, false_positives, evaluate_neg.size, delta, confidence
    )
    return EmpiricalEpsilon(
        epsilon=epsilon,
        threshold=chosen.threshold,
        tpr=true_positives / evaluate_pos.size,
        fpr=false_positives / evaluate_neg.size,
    )


def prosecutor_risk(class_sizes: Sequence[int] | np.ndarray) -> dict[str, object]:
    """Re-identification risk of a release split into equivalence classes (records sharing the
    same quasi-identifiers), for a prosecutor who knows their target is in the release.

    Such an attacker picks the right record of a class of size k with probability 1/k, so:
    "worst" is 1 / the smallest class; "average" is the mean of 1/k over records, which equals
    number of classes / number of records; "records_at_risk_above" maps each of 0.2, 0.1 and
    0.05 to the share of records whose risk 1/k exceeds it (El Emam & Dankar 2008).
    """
    sizes = np.asarray(class_sizes, dtype=np.float64).ravel()
    if sizes.size == 0:
        raise ValueError("class_sizes is empty; a release with no equivalence classes has no risk to score.")
    if np.isnan(sizes).any() or (sizes < 1).any() or (sizes != np.floor(sizes)).any():
        raise ValueError(f"class sizes must be whole numbers >= 1 (records per class), got {list(class_sizes)}.")
    records = float(sizes.sum())
    risks = 1.0 / sizes
    return {
        "worst": float(risks.max()),
        "average": sizes.size / records,
        "records_at_risk_above": {
            threshold: float(sizes[risks > threshold].sum()) / records for threshold in RISK_THRESHOLDS
        },
    }
