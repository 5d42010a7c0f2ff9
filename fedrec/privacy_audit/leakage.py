"""Item-set leakage to the server: from what a store sends in one round, which items did its
customers interact with?

The attacker is the honest-but-curious server. It ranks every item by how much the item's
rows changed in what it received (an item a customer trained on moves its own embedding row;
Yuan et al. 2023 show the idea, with local training simulated, as a stronger attack) and is
scored per store against the store's true item set: ROC AUC and TPR at 1% FPR, averaged over
stores, over all items and over the items that 1, 2-4 or 5+ of the store's customers bought.
A server that ranks by popularity alone (the true item counts over all stores: the strongest
such attacker) is the baseline a defence should bring the attack down to.

What the server receives depends on the mode, and the audit scores each view the mode
allows: each store's update (plain, or noised by per-store DP, or the store's noise share
under distributed DP without SecAgg+), or only the sum over stores (SecAgg+).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrec.models import create_model
from fedrec.models.registry import model_class
from fedrec.privacy.attack_metrics import roc_auc, tpr_at_fpr
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy_audit.replay import ReplayedRound

BUYER_BINS = {"single_buyer": (1, 1), "2_to_4_buyers": (2, 4), "5_or_more_buyers": (5, None)}


@dataclass(frozen=True)
class View:
    name: str
    secure: bool  # only the sum over stores is seen
    scores: list[np.ndarray]  # per store, (n_items + 1,)


def item_row_tables(replay: ReplayedRound) -> tuple[str, ...]:
    """The shared tables with a row per item: the model's own list (the tables whose row i moves
    only when item i is trained on), else every shared table with one row per item."""
    declared = model_class(replay.train.model).item_row_parameters
    if declared:
        return declared
    rows = replay.n_items + 1
    return tuple(key for key, value in replay.global_state.items() if value.dim() >= 1 and value.shape[0] == rows)


def item_classes(replay: ReplayedRound) -> torch.Tensor:
    """Row of each item in the item tables (under a DP vocabulary, items outside it share one row)."""
    model = create_model(replay.train.model, replay.train, n_users=0, n_items=replay.n_items)
    model.load_partial_state(replay.global_state)
    every_item = torch.arange(replay.n_items + 1)
    classes_of = getattr(model.net, "classes_of", None)
    return classes_of(every_item) if classes_of is not None else every_item


def row_change(change: dict[str, torch.Tensor], tables: tuple[str, ...], classes: torch.Tensor) -> np.ndarray:
    """(n_items + 1,) Euclidean norm of each item's rows in ``change``, over ``tables``."""
    squared = sum(change[key].reshape(change[key].shape[0], -1).double().pow(2).sum(dim=1) for key in tables)
    return squared.sqrt()[classes].numpy()


def attacker_views(replay: ReplayedRound) -> list[View]:
    """Each store's update, and the sum the server gets under SecAgg+ (the weighted average of
    updates; under distributed DP the plain sum of noise shares)."""
    tables, classes = item_row_tables(replay), item_classes(replay)
    each = [row_change(store.change, tables, classes) for store in replay.stores]
    weights = [1.0 if replay.plan is not None else store.weight for store in replay.stores]
    summed = {key: sum(w * store.change[key] for w, store in zip(weights, replay.stores)) / sum(weights) for key in tables}
    together = row_change(summed, tables, classes)
    names = privacy_mode(replay.train.dp).attacker_views
    return [View(names[0], False, each), View(names[1], True, [together] * len(replay.stores))]


def popularity_view(replay: ReplayedRound) -> View:
    counts = sum(store.item_buyers for store in replay.stores).astype(np.float64)
    return View("popularity only (true item counts over all stores)", True, [counts] * len(replay.stores))


def score_view(view: View, replay: ReplayedRound) -> dict:
    """Mean over stores of AUC and TPR at 1% FPR, over all items and per buyer bin."""
    found = {"view": view.name, "secure": view.secure}
    for label, (low, high) in {"all": (1, None), **BUYER_BINS}.items():
        aucs, tprs = [], []
        for scores, store in zip(view.scores, replay.stores):
            buyers = store.item_buyers[1:]
            positive = (buyers >= low) & (buyers <= (np.inf if high is None else high))
            negative = buyers == 0
            if positive.any() and negative.any():
                aucs.append(roc_auc(scores[1:][positive], scores[1:][negative]))
                tprs.append(tpr_at_fpr(scores[1:][positive], scores[1:][negative], 0.01))
        found[label] = {"auc": float(np.mean(aucs)) if aucs else None,
                        "tpr_at_1pct_fpr": float(np.mean(tprs)) if tprs else None, "stores": len(aucs)}
    return found


def item_leakage(replay: ReplayedRound) -> dict:
    """The attack's figures for every view of the replayed round, and the popularity baseline."""
    return {
        "round": replay.round,
        "stores": len(replay.stores),
        "tables": list(item_row_tables(replay)),
        "popularity": score_view(popularity_view(replay), replay),
        # "own": the view this run gave its server (the sum only under SecAgg+)
        "views": [{**score_view(view, replay), "own": view.secure == bool(replay.federation.secagg)}
                  for view in attacker_views(replay)],
    }
