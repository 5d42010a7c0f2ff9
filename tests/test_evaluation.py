"""One evaluation pass gives the ranks the metrics use and the top-k lists the audits read."""

from __future__ import annotations

import numpy as np

from fedrec.evaluation import evaluation_pass, rank_targets
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
