"""The attacks' scoring on hand-made inputs: row changes, per-store AUC by buyer bins, the
membership attack's figures."""

from __future__ import annotations

import numpy as np
import torch

from fedrec.config import FederationConfig, TrainConfig
from fedrec.privacy_audit.leakage import View, row_change, score_view
from fedrec.privacy_audit.membership import membership_attack
from fedrec.privacy_audit.replay import ReplayedRound, StoreUpdate


def test_row_change_is_the_norm_over_tables_and_items_of_one_class_share_it():
    change = {"a": torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0]]), "b": torch.tensor([0.0, 4.0, 1.0])}
    classes = torch.tensor([0, 1, 2, 2])  # items 2 and 3 share row 2 (a DP vocabulary's "other")
    assert np.allclose(row_change(change, ("a", "b"), classes), [0.0, 5.0, 1.0, 1.0])


def test_a_view_scores_each_store_against_its_own_items_by_buyer_bin():
    n_items = 200
    rng = np.random.default_rng(0)
    stores, scores = [], []
    for _ in range(3):
        buyers = np.zeros(n_items + 1, dtype=np.int64)
        bought = rng.choice(np.arange(1, n_items + 1), 60, replace=False)
        buyers[bought[:30]], buyers[bought[30:50]], buyers[bought[50:]] = 1, 3, 9
        stores.append(StoreUpdate("s", {}, 1.0, buyers))
        scores.append(buyers.astype(float) + rng.random(n_items + 1) * 0.5)  # every bought item above every other
    replay = ReplayedRound(2, TrainConfig(), FederationConfig(), {}, stores, None)

    perfect = score_view(View("perfect", False, scores), replay)
    blind = score_view(View("blind", True, [rng.random(n_items + 1) for _ in stores]), replay)

    assert perfect["all"]["auc"] == perfect["single_buyer"]["auc"] == 1.0 and perfect["all"]["stores"] == 3
    assert perfect["all"]["tpr_at_1pct_fpr"] == 1.0
    assert abs(blind["all"]["auc"] - 0.5) < 0.1 and blind["single_buyer"]["auc"] < 0.7


def test_membership_attack_separates_and_bounds():
    rng = np.random.default_rng(0)
    separated = membership_attack(rng.normal(5, 1, 2000), rng.normal(0, 1, 2000), delta=1e-5, seed=0)
    mixed = membership_attack(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), delta=1e-5, seed=0)
    assert separated.auc > 0.99 and separated.tpr_at_1pct_fpr > 0.9 and separated.epsilon_lower_bound > 3
    assert abs(mixed.auc - 0.5) < 0.05 and mixed.epsilon_lower_bound < 0.5
