"""The recommender behind the HTTP API, in process: MF's closed-form fold-in agrees with the
iterative one it replaces, and items a DP LSTM never learnt on their own get attribute
neighbours, flagged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fedrec.config import TrainConfig
from fedrec.data import load_dataset
from fedrec.models.registry import create_model
from fedrec.serving import ReleaseRecommender, open_release
from fedrec.serving.fold_in import ClosedFormFoldIn


def test_closed_form_fold_in_agrees_with_the_iterative_fold_in(releases, shop):
    model = open_release(releases("mf")).model
    histories = [np.asarray(s[:-1]) for s in load_dataset(str(shop)).sequences[:20]]

    iterative = model.fold_in(histories)
    closed = ClosedFormFoldIn(model)

    cosine = torch.nn.functional.cosine_similarity(iterative, closed.user_vectors(histories))
    with torch.no_grad():
        fitted = model.net.logits(iterative)[:, 1:].numpy()
    served = closed.score(np.zeros(len(histories)), histories)[:, 1:].numpy()
    correlation = [np.corrcoef(a, b)[0, 1] for a, b in zip(fitted, served)]
    assert float(cosine.min()) > 0.5
    assert min(correlation) > 0.5


def test_items_outside_the_dp_vocabulary_get_flagged_attribute_neighbours(releases):
    release = open_release(releases("mf"))
    n = release.model.n_items
    config = TrainConfig(model="lstm", dp="local", noise_multiplier=1.0, vocab_size=30, prior_noise=1.0, dim=8, threads=1)
    lstm = create_model("lstm", config, n_users=0, n_items=n)
    counts = np.zeros(n + 1)
    counts[1:] = np.arange(n, 0, -1)  # items 1..30 make the vocabulary
    lstm.apply_popularity_prior(counts)
    service = ReleaseRecommender(dataclasses.replace(release, model=lstm))
    learnt, shared = release.items.set_index("item").loc[[5, 500], "item_id"]

    own = service.similar(learnt, k=5)
    other = service.similar(shared, k=5)

    assert own["fallback"] is False and {i["because"]["kind"] for i in own["items"]} == {"model"}
    assert {int(service.catalog.dense[i["item_id"]]) for i in own["items"]} <= set(range(1, 31))
    assert other["fallback"] is True and "vocabulary" in other["notes"][0]
    assert other["items"] and all(i["because"]["kind"] == "attribute" for i in other["items"])
    basket = service.recommend([learnt, shared], k=5)
    assert len(basket["items"]) == 5 and not basket["fallback"]


@pytest.mark.parametrize("kind", ["pop", "itemknn", "mf", "lstm", "mlp"])
def test_the_basket_order_matters_only_to_the_sequence_models(releases, kind):
    service = ReleaseRecommender(open_release(releases(kind)))
    basket = service.catalog.raw[1:6]

    forward = [i["item_id"] for i in service.recommend(basket, k=10)["items"]]
    backward = [i["item_id"] for i in service.recommend(basket[::-1], k=10)["items"]]

    if kind in ("lstm", "mlp"):  # they read the last item apart from the rest
        assert forward != backward
    else:
        assert forward == backward


def test_a_popularity_release_answers_with_the_catalog_and_its_counts(releases):
    service = ReleaseRecommender(open_release(releases("pop")))
    basket = service.catalog.raw[1:4]

    answer = service.recommend(basket, k=10)
    similar = service.similar(basket[0], k=5)

    assert not answer["fallback"] and len(answer["items"]) == 10
    assert {i["because"]["kind"] for i in answer["items"]} <= {"attribute", "popular"}
    assert similar["fallback"] is True and "no item space" in similar["notes"][0]
    assert similar["items"] and all(i["because"]["kind"] == "attribute" for i in similar["items"])
