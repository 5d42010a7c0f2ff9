"""`fedrec serve` over real HTTP, for each released model kind: recommendations and similar
items answered in the shop's own ids and checked against the release's catalog, with
reasons that name a basket item, an attribute or popularity; bad requests get a 4xx naming
the problem and the server keeps answering."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.serving.conftest import running

KINDS = ["itemknn", "mf", "lstm"]


@pytest.fixture(scope="module", params=KINDS)
def served(request, releases, server_logs):
    release = releases(request.param)
    yield from running(release, server_logs / f"{request.param}.log", kind=request.param)


@pytest.fixture(scope="module")
def catalog(served) -> pd.DataFrame:
    return pd.read_parquet(served.release / "items.parquet").set_index("item_id", drop=False)


def basket_of(catalog: pd.DataFrame, n: int = 4) -> list[str]:
    """Items of one brand and others: reasons by brand, category and model all get exercised."""
    return [str(i) for i in catalog["item_id"].iloc[[3, 10, 25, 40][:n]]]


def check_reason(answered: dict, basket: list[str], catalog: pd.DataFrame) -> None:
    because, reason = answered["because"], answered["reason"]
    if because["kind"] == "popular":
        assert reason.startswith("popular")
        return
    named = because["item_id"]
    assert named in basket, answered
    assert f"{catalog.loc[named, 'name']} ({named})" in reason, answered  # the item by its catalog name and shop id
    if because["kind"] == "attribute":
        assert because["attributes"], answered
        for column, value in because["attributes"].items():
            assert value in reason
            assert catalog.loc[answered["item_id"], column] == catalog.loc[named, column]
    else:
        assert because["kind"] == "model" and "model" in reason


def test_recommendations_are_catalog_items_with_reasons(served, catalog):
    basket = basket_of(catalog)
    reply = served.client.post("/recommend", json={"items": basket, "k": 10, "exclude_seen": True})

    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["fallback"] is False and answer["unknown_items"] == [] and answer["truncated"] is False
    assert answer["history_used"] == len(basket)
    items = answer["items"]
    assert len(items) == 10
    assert len({i["item_id"] for i in items}) == 10
    assert all(i["item_id"] in catalog.index for i in items)
    assert not {i["item_id"] for i in items} & set(basket)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    for answered in items:
        assert answered["name"] and answered["name"] == catalog.loc[answered["item_id"], "name"]  # the shop's catalog file
        assert answered["brand"] == catalog.loc[answered["item_id"], "brand"]
        assert answered["category"] == catalog.loc[answered["item_id"], "category"]
        check_reason(answered, basket, catalog)


def test_seen_items_may_come_back_when_asked(served, catalog):
    basket = basket_of(catalog)
    answer = served.client.post("/recommend", json={"items": basket, "k": 100, "exclude_seen": False}).json()
    kept = served.client.post("/recommend", json={"items": basket, "k": 100}).json()

    assert len(answer["items"]) == 100
    assert not {i["item_id"] for i in kept["items"]} & set(basket)


def test_brand_and_category_filters(served, catalog):
    basket = basket_of(catalog)
    brand = catalog["brand"].value_counts().index[0]
    category = catalog["category"].iloc[3]

    by_brand = served.client.post("/recommend", json={"items": basket, "k": 5, "brand": brand.upper()}).json()
    by_category = served.client.post("/recommend", json={"items": basket, "k": 5, "category": category}).json()
    nothing = served.client.post("/recommend", json={"items": basket, "k": 5, "brand": "no such brand"}).json()

    assert by_brand["items"] and all(i["brand"] == brand for i in by_brand["items"])
    assert by_category["items"] and all(i["category"] == category for i in by_category["items"])
    assert nothing["items"] == [] and "no such brand" in " ".join(nothing["notes"])


def test_unknown_ids_are_ignored_and_listed(served, catalog):
    basket = basket_of(catalog, 2)
    answer = served.client.post("/recommend", json={"items": ["no-such-item", basket[0], 987654321, basket[1], "no-such-item"],
                                                     "k": 5}).json()

    assert answer["unknown_items"] == ["no-such-item", "987654321"]
    assert answer["history_used"] == 2 and answer["fallback"] is False
    assert any("ignored" in note for note in answer["notes"])
    for answered in answer["items"]:
        check_reason(answered, basket, catalog)


@pytest.mark.parametrize("basket", [[], ["nope", "nada"]], ids=["empty", "all unknown"])
def test_a_basket_the_model_cannot_read_gets_the_popularity_fallback(served, catalog, basket):
    popular = json.loads((served.release / "popularity.json").read_text())
    answer = served.client.post("/recommend", json={"items": basket, "k": 7}).json()

    assert answer["fallback"] is True
    assert [i["item_id"] for i in answer["items"]] == popular["item_ids"][:7]
    assert all(i["because"]["kind"] == "popular" and "fallback" in i["reason"] for i in answer["items"])
    assert answer["unknown_items"] == basket


def test_a_long_history_is_truncated_to_the_most_recent_items(served, catalog):
    history = [str(i) for i in catalog["item_id"].iloc[:300]]
    answer = served.client.post("/recommend", json={"items": history, "k": 5}).json()

    assert answer["truncated"] is True
    assert answer["history_used"] == (50 if served.kind == "lstm" else 200)  # the LSTM's max_len; 200 otherwise
    assert any("most recent" in note for note in answer["notes"])
    assert not {i["item_id"] for i in answer["items"]} & set(history)


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"items": [], "k": 0}, 422, "k"),
        ({"items": [], "k": 1000}, 422, "k"),
        ({"items": [], "k": "ten"}, 422, "k"),
        ({"items": "123", "k": 5}, 422, "items"),
        ({"items": [[1, 2]], "k": 5}, 422, "items"),
        ({"items": [], "exclude_sen": False}, 422, "exclude_sen"),
        ('{"items": ["1", "2"', 400, "malformed JSON"),
        ("not json at all", 400, "malformed JSON"),
        ("[1, 2, 3]", 422, "body"),
        ("", 422, "body"),
    ],
    ids=["k=0", "k=1000", "k=text", "items=string", "items nested", "unknown field", "truncated JSON", "not JSON", "a list",
         "no body"],
)
def test_bad_requests_get_a_4xx_naming_the_problem(served, body, status, named):
    if isinstance(body, dict):
        reply = served.client.post("/recommend", json=body)
    else:
        reply = served.client.post("/recommend", content=body, headers={"content-type": "application/json"})

    assert reply.status_code == status, reply.text
    assert named in reply.json()["detail"]
    assert served.alive()


def test_an_oversized_body_is_refused_before_it_is_read(served):
    reply = served.client.post("/recommend", content=b'{"items": [' + b'"1",' * 300_000 + b'"1"]}',
                               headers={"content-type": "application/json"})

    assert reply.status_code == 413 and "limit" in reply.json()["detail"]
    assert served.alive()


def test_similar_items_are_other_catalog_items(served, catalog):
    item = json.loads((served.release / "popularity.json").read_text())["item_ids"][0]  # one the model surely learnt
    answer = served.client.get(f"/items/{item}/similar", params={"k": 8}).json()

    assert answer["item"]["item_id"] == item
    items = answer["items"]
    assert 0 < len(items) <= 8 and item not in {i["item_id"] for i in items}
    assert all(i["item_id"] in catalog.index for i in items)
    for answered in items:
        assert answered["because"]["item_id"] == item
        if answered["because"]["kind"] == "attribute":
            for column, value in answered["because"]["attributes"].items():
                assert catalog.loc[answered["item_id"], column] == catalog.loc[item, column] == value
    assert answer["fallback"] is (served.kind == "pop")


def test_similar_for_unknown_items_and_bad_k(served):
    unknown = served.client.get("/items/no-such-item/similar")
    zero = served.client.get("/items/1/similar", params={"k": 0})
    many = served.client.get("/items/1/similar", params={"k": 101})

    assert unknown.status_code == 404 and "no-such-item" in unknown.json()["detail"]
    assert zero.status_code == 422 and "k" in zero.json()["detail"]
    assert many.status_code == 422 and "k" in many.json()["detail"]
    assert served.alive()


def test_health_card_metrics_and_docs(served):
    ready = served.client.get("/readyz").json()
    card = served.client.get("/model").json()
    served.client.post("/recommend", json={"items": [], "k": 1})
    metrics = served.client.get("/metrics")
    docs = served.client.get("/docs")
    schema = served.client.get("/openapi.json").json()

    assert ready["ready"] is True and ready["model"] == served.kind
    assert card == json.loads((served.release / "model_card.json").read_text())
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'fedrec_serving_requests_total{method="POST",endpoint="/recommend",status="200"}' in metrics.text
    assert 'fedrec_serving_request_duration_seconds_count{method="POST",endpoint="/recommend"}' in metrics.text
    assert 'fedrec_serving_fallbacks_total{endpoint="/recommend"}' in metrics.text
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert {"/recommend", "/items/{item_id}/similar", "/model", "/admin/reload"} <= set(schema["paths"])
