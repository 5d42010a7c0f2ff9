"""Full-ranking metrics on cases small enough to compute by hand."""

import math

import numpy as np
import pytest
import torch

from fedrec.metrics import hit_rate, mask_seen, mrr, ndcg, summarize, target_ranks


def test_rank_counts_items_scored_above_the_target():
    scores = torch.tensor([[-math.inf, 0.9, 0.5, 0.7, 0.1]])  # column 0 is padding
    ranks = target_ranks(scores, torch.tensor([2]))  # 0.5: beaten by 0.9 and 0.7
    assert ranks.tolist() == [2]


def test_ties_are_counted_against_the_target():
    scores = torch.tensor([[-math.inf, 1.0, 1.0, 1.0, 1.0]])
    assert target_ranks(scores, torch.tensor([1])).tolist() == [3]


def test_masked_target_ranks_last():
    scores = torch.tensor([[-math.inf, 0.2, 0.9, 0.4]])
    mask_seen(scores, [np.array([2])])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [4]


def test_mask_seen_hides_history_and_padding_only():
    scores = torch.ones(2, 5)
    mask_seen(scores, [np.array([1, 3]), np.array([], dtype=np.int64)])
    assert torch.isneginf(scores[0]).tolist() == [True, True, False, True, False]
    assert torch.isneginf(scores[1]).tolist() == [True, False, False, False, False]


def test_hit_rate_ndcg_and_mrr_match_hand_computation():
    ranks = torch.tensor([0, 1, 4, 12])
    assert hit_rate(ranks, 1) == pytest.approx(1 / 4)
    assert hit_rate(ranks, 5) == pytest.approx(3 / 4)
    assert hit_rate(ranks, 10) == pytest.approx(3 / 4)
    expected_ndcg5 = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(6)) / 4
    assert ndcg(ranks, 5) == pytest.approx(expected_ndcg5)
    assert mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 13) / 4)


def test_summarize_reports_every_cutoff_and_mrr():
    out = summarize(torch.tensor([0, 7, 15, 30]), ks=(5, 10, 20))
    assert list(out) == ["hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr"]
    assert out["hr@5"] == pytest.approx(0.25)
    assert out["hr@10"] == pytest.approx(0.5)
    assert out["hr@20"] == pytest.approx(0.75)
    assert 0.0 <= out["ndcg@10"] <= out["hr@10"]


def test_perfect_ranking_scores_one_everywhere():
    scores = torch.tensor([[-math.inf, 5.0, 1.0, 0.0], [-math.inf, 0.0, 1.0, 5.0]])
    out = summarize(target_ranks(scores, torch.tensor([1, 3])), ks=(1,))
    assert out == {"hr@1": 1.0, "ndcg@1": 1.0, "mrr": 1.0}
