"""One evaluation pass gives the ranks the metrics use and the top-k lists the audits read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fedrec.evaluation as evaluation
import fedrec.metrics as metrics
from fedrec.data.split import EvalSet
from fedrec.evaluation import evaluation_pass, rank_targets, top_k_items
from fedrec.models import create_model
from fedrec.training import fit_model


def test_the_pass_keeps_each_users_top_k_as_recommend_gives_it(chain_split, fast_config):
    data, split = chain_split
    model = create_model("mf", fast_config, n_users=data.n_users, n_items=data.n_items)  # no tied scores
    fit_model(model, split)

    result = evaluation_pass(model, split.test, top_k=10)

    assert result.top_items.shape == (len(split.test.users), 10)
    np.testing.assert_array_equal(result.top_items, model.recommend(split.test.users, split.test.histories, k=10))
    assert result.ranks.tolist() == rank_targets(model, split.test).tolist()
    hits = [target in top for target, top in zip(split.test.targets, result.top_items)]
    assert np.mean(hits) == (result.ranks < 10).float().mean().item()


def test_without_top_k_no_lists_are_kept(chain_split, fast_config):
    data, split = chain_split
    model = create_model("pop", fast_config, n_users=data.n_users, n_items=data.n_items)
    fit_model(model, split)

    assert evaluation_pass(model, split.test).top_items is None


class FixedScores:
    """A scorer reduced to what the evaluation reads: one hand-made row of scores per user."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def score(self, users: np.ndarray, histories) -> torch.Tensor:
        return self.table[torch.from_numpy(users)].clone()


def scores_with_ties(n_users: int, n_items: int, seed: int = 0) -> torch.Tensor:
    """Rows of every kind the top-k search treats apart: distinct scores, popular (low) ids
    best, two leaders in one stride group, a leader in the tail, whole rows of small integers
    (ties everywhere), ties exactly at the k-th place (one of them in a leader's group), and a
    constant row."""
    rng = np.random.default_rng(seed)
    columns = n_items + 1
    groups = columns // 8
    table = rng.normal(size=(n_users, columns))
    for user in range(n_users):
        kind = user % 7
        if kind == 1:
            table[user] -= 0.02 * np.arange(columns)
        elif kind == 2:
            table[user, [5, 5 + groups, 5 + 2 * groups]] = [9.0, 8.0, 7.0]
        elif kind == 3:
            table[user, columns - 2] = 9.0
        elif kind == 4:
            table[user] = rng.integers(0, 6, size=columns)
        elif kind == 5:
            table[user, rng.choice(np.arange(1, columns), size=14, replace=False)] = 5.0
            table[user, rng.choice(np.arange(1, columns), size=3, replace=False)] = 6.0
        elif kind == 6 and user % 14 == 6:
            table[user] = 1.0
        elif kind == 6:  # ten leaders in ten groups; the k-th's twin hides in the first leader's group
            leaders = 3 + 2 * np.arange(10)
            table[user] = -5.0
            table[user, leaders] = 20.0 - np.arange(10)
            table[user, leaders[0] + groups] = 11.0
    return torch.tensor(table, dtype=torch.float32)


def test_the_pass_ranks_and_lists_as_a_brute_force_count_and_sort(monkeypatch):
    n_users, n_items, k = 70, 300, 10
    table = scores_with_ties(n_users, n_items)
    rng = np.random.default_rng(1)
    seen = np.arange(60, n_items + 1)  # the rows' planted leaders stay unseen
    histories = [np.sort(rng.choice(seen, size=int(rng.integers(1, 40)), replace=False)) for _ in range(n_users)]
    targets = rng.integers(1, n_items + 1, size=n_users)
    targets[3] = histories[3][0]  # a seen target: masked, ranked last
    eval_set = EvalSet(users=np.arange(n_users), histories=histories, targets=targets)
    monkeypatch.setattr(evaluation, "EVAL_BATCH_USERS", 16)  # several batches, the last one short
    monkeypatch.setattr(metrics, "RANK_BLOCK_ROWS", 5)  # and each ranked in blocks, the last one short

    result = evaluation_pass(FixedScores(table), eval_set, top_k=k)

    assert result.top_items.shape == (n_users, k)
    for user in range(n_users):
        row = table[user].tolist()
        for item in [0, *histories[user]]:
            row[item] = -math.inf
        target = row[targets[user]]
        rank = n_items + 1 if target == -math.inf else sum(score >= target for score in row) - 1
        assert result.ranks[user].item() == rank, user
        listed = result.top_items[user].tolist()
        assert len(set(listed)) == k and not set(listed) & {0, *histories[user]}
        best = sorted(row, reverse=True)
        assert [row[item] for item in listed] == best[:k], user  # the k best scores, best first
        if best[k - 1] > best[k] and len(set(best[:k])) == k:  # no tie: one possible list
            assert listed == sorted(range(n_items + 1), key=lambda item: -row[item])[:k], user
        # ties in torch.topk's own order, as the pass always gave them
        assert listed == torch.topk(torch.tensor([row]), k, dim=1).indices[0].tolist(), user
    assert (result.ranks[3] == n_items + 1).item()


@pytest.mark.parametrize("k", [1, 3, 10, 20])
def test_top_k_items_is_torch_topk_ties_nan_and_inf_included(k):
    table = scores_with_ties(120, 2000, seed=k)
    table[7, 11] = math.nan
    table[8, [40, 41]] = math.inf
    table[9, 1:] = -math.inf
    table[10, 100:] = -math.inf

    assert torch.equal(top_k_items(table, k), torch.topk(table, k, dim=1).indices)
