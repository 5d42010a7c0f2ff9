"""The server's own evaluation of the global model after each round, kept apart from the
round orchestration so what "the server measures" is readable on its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import leave_one_out
from fedrec.data.catalog import align_to_catalog
from fedrec.data.holdout import held_out
from fedrec.data.split import EvalSet
from fedrec.evaluation import evaluate
from fedrec.federation.client import shared_dataset
from fedrec.models import create_model


class GlobalEvaluator:
    """Full-ranking metrics of the global model on the server's copy of the held-out items.

    In simulation the server reads the same data set the clients were cut from; deployed,
    it needs an evaluation set of its own (``server-eval=false`` skips this and relies on
    federated evaluation). MF user vectors never reach the server, so it folds them in
    from each user's history with the item side frozen. With --audit-holdout it evaluates the
    customers who trained, as the stores' release audit does, so the run has one test HR@10
    on one population (each round's record counts ``test_users``; run_record puts it in words).
    """

    def __init__(self, train: TrainConfig, federation: FederationConfig) -> None:
        data = shared_dataset(train.data, train.min_interactions, train.short_users)
        if federation.item_catalog and federation.item_catalog != train.data:
            catalog = shared_dataset(federation.item_catalog, train.min_interactions, train.short_users)
            data = align_to_catalog(data, catalog.items, min_interactions=train.min_interactions)
        split = leave_one_out(data)
        self.valid, self.test = split.valid, split.test
        if federation.audit_holdout:  # the customers who never trained are not the stores' test users either
            trained = np.flatnonzero(~held_out(data.users.raw[self.test.users], federation.audit_holdout, train.seed))
            self.valid, self.test = _subset(self.valid, trained), _subset(self.test, trained)
        self.eligible = len(self.test.users)  # before --eval-users draws its sample
        if federation.eval_users and federation.eval_users < self.eligible:
            chosen = np.sort(np.random.default_rng(train.seed).choice(self.eligible, federation.eval_users, replace=False))
            self.valid, self.test = _subset(self.valid, chosen), _subset(self.test, chosen)
        self.model = create_model(train.model, train, n_users=0, n_items=data.n_items)
        self.n_items = data.n_items
        self.mask_history = train.mask_history

    def __call__(self, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        self.model.load_partial_state(state)
        scorer = self.model.scorer_for(len(self.test.users))  # MF: the users' vectors folded in
        valid = evaluate(scorer, self.valid, mask_history=self.mask_history)
        test = evaluate(scorer, self.test, mask_history=self.mask_history)
        return {"hr@10": test["hr@10"], "ndcg@10": test["ndcg@10"], "valid_hr@10": valid["hr@10"], "metrics": test,
                "test_users": len(self.test.users), "eligible_test_users": self.eligible}


def _subset(eval_set: EvalSet, rows: np.ndarray) -> EvalSet:
    return EvalSet(eval_set.users[rows], [eval_set.histories[i] for i in rows], eval_set.targets[rows])
