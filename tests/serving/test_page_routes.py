"""The routes behind the page, over real HTTP: the page's own files, the catalog search
(catalog columns only, paged and bounded), the release's verdict, and the audit pictures
(the three known names only: anything else, and any path out of the folder, is a 404)."""

from __future__ import annotations

import http.client
import json
import shutil
from contextlib import contextmanager
from urllib.parse import urlsplit

import pandas as pd
import pytest

from fedrec.release.bundle import CHECKSUMS
from fedrec.release.gatekeeper import PLOTS
from fedrec.serving.app import MAX_SEARCH_RESULTS, PICTURES
from fedrec.serving.catalog import Catalog
from tests.serving.conftest import running

KEY = "page-key-0b7e"


@pytest.fixture(scope="module")
def served(releases, server_logs):
    yield from running(releases("itemknn"), server_logs / "page_routes.log", kind="itemknn")


@pytest.fixture(scope="module")
def catalog(served) -> pd.DataFrame:
    return pd.read_parquet(served.release / "items.parquet")


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written: http.client sends dot segments and escapes unchanged."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_page_and_its_files_are_served(served):
    page = served.client.get("/")
    script = served.client.get("/page/app.js")
    style = served.client.get("/page/style.css")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/page/app.js"' in page.text and "/page/style.css" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "innerHTML" not in script.text.replace("(never innerHTML)", "")
    assert served.client.get("/page/favicon.svg").headers["content-type"] == "image/svg+xml"
    for other in ("/page/", "/page/nothing.js", "/page/index.html", "/page/__init__.py"):
        assert served.client.get(other).status_code == 404, other


def test_search_finds_items_by_id_brand_and_category(served, catalog):
    item = catalog.iloc[7]
    by_id = served.client.get("/items", params={"query": str(item["item_id"])}).json()
    brand = served.client.get("/items", params={"query": item["brand"].upper(), "limit": 50}).json()
    both = served.client.get("/items", params={"query": f"{item['category'].lower()} {item['brand']}", "limit": 50}).json()

    assert by_id["items"][0] == {"item_id": str(item["item_id"]), "name": item["name"], "brand": item["brand"], "category": item["category"]}
    assert brand["total"] == int((catalog["brand"] == item["brand"]).sum()) and brand["items"]
    assert all(i["brand"] == item["brand"] for i in brand["items"])
    assert both["total"] == int(((catalog["brand"] == item["brand"]) & (catalog["category"] == item["category"])).sum())
    assert all(i["brand"] == item["brand"] and i["category"] == item["category"] for i in both["items"])
    for answer in (by_id, brand, both):
        for found in answer["items"]:
            assert set(found) == {"item_id", "name", "brand", "category"}  # catalog columns only (no price, no dense id)
    assert served.client.get("/items", params={"query": "no such product anywhere"}).json() == {
        "query": "no such product anywhere", "total": 0, "offset": 0, "limit": 20, "items": []}


def test_search_by_name_when_the_catalog_has_names():
    catalog = Catalog.from_frame(pd.DataFrame({
        "item": [1, 2, 3, 4], "item_id": ["A-1", "B-2", "C-3", "11"],
        "name": ["Rose Night Cream", "Rose Water Toner", None, "Shampoo"],
        "brand": ["Elidora", "Kaane", "Kaane", None], "category": ["Skin Care", "Skin Care", "Hair Care", "Hair Care"]}))

    assert catalog.search("rose", limit=10) == (2, [1, 2])
    assert catalog.search("ROSE  kaane", limit=10) == (1, [2])
    assert catalog.search("hair", limit=10) == (2, [3, 4])
    assert catalog.search("11", limit=10) == (1, [4])  # an exact shop id first; ids are searched too
    assert catalog.search("1", limit=10) == (2, [1, 4])
    assert catalog.search("", limit=2, offset=1) == (4, [2, 3])
    assert catalog.search("cream toner", limit=10) == (0, [])


def test_search_is_paged_and_bounded(served, catalog):
    first = served.client.get("/items", params={"limit": 5}).json()
    second = served.client.get("/items", params={"limit": 5, "offset": 5}).json()
    beyond = served.client.get("/items", params={"limit": 5, "offset": len(catalog) + 10}).json()

    assert first["total"] == len(catalog) and len(first["items"]) == 5
    assert [i["item_id"] for i in first["items"] + second["items"]] == [str(v) for v in catalog.sort_values("item")["item_id"][:10]]
    assert beyond["items"] == [] and beyond["total"] == len(catalog)
    for params, named in [({"limit": 0}, "limit"), ({"limit": MAX_SEARCH_RESULTS + 1}, "limit"), ({"offset": -1}, "offset"),
                          ({"query": "x" * 101}, "query"), ({"limit": "many"}, "limit")]:
        reply = served.client.get("/items", params=params)
        assert reply.status_code == 422 and named in reply.json()["detail"], (params, reply.text)
    assert served.alive()


def test_the_verdict_lists_the_checks_with_thresholds(served):
    verdict = served.client.get("/model/verdict").json()

    assert verdict == json.loads((served.release / "verdict.json").read_text())
    assert verdict["verdict"] == "passed" and verdict["checks"]
    assert all("threshold" in check and "value" in check for check in verdict["checks"])


@pytest.mark.parametrize("name", PICTURES)
def test_the_audit_pictures_are_served(served, name):
    reply = served.client.get(f"/release/pictures/{name}")

    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content == (served.release / name).read_bytes() and reply.content.startswith(b"\x89PNG")


def test_the_known_pictures_are_the_audits():
    assert PICTURES == PLOTS


@pytest.mark.parametrize("path", [
    "/release/pictures/model.pt", "/release/pictures/verdict.json", "/release/pictures/items.parquet",
    "/release/pictures/POPULARITY.PNG", "/release/pictures/popularity.png.bak", "/release/pictures/",
    "/release/pictures/..%2Fmodel.pt", "/release/pictures/..%2F..%2F..%2Fetc%2Fpasswd", "/release/pictures/%2E%2E",
    "/release/pictures/../model.pt", "/release/pictures/../../model_card.json", "/release/pictures/popularity.png/..",
    "/release/pictures/%00popularity.png", "/release/model.pt", "/page/../../release/model.pt", "/page/..%2F__init__.py",
    "/page/%2e%2e/app.py", "/page/../app.py",
])
def test_other_names_and_paths_out_of_the_folder_are_refused(served, path):
    status, body = raw_get(served.url, path)

    assert status == 404, (path, body[:200])
    assert b"\x89PNG" not in body and b"PK" not in body[:4] and b"import" not in body
    assert served.alive()


def test_a_picture_the_audit_did_not_draw_is_a_404(releases, server_logs, tmp_path):
    folder = shutil.copytree(releases("itemknn"), tmp_path / "release")
    (folder / "popularity.png").unlink()
    lines = [line for line in (folder / CHECKSUMS).read_text().splitlines() if not line.endswith("popularity.png")]
    (folder / CHECKSUMS).write_text("\n".join(lines) + "\n")
    with contextmanager(running)(folder, server_logs / "page_routes_missing.log", kind="itemknn", api_key=KEY) as server:
        reply = server.client.get("/release/pictures/popularity.png", headers={"X-API-Key": KEY})
        assert reply.status_code == 404 and "popularity.png" in reply.json()["detail"]
        # with a key: the page's files stay open, the data behind it does not
        assert server.client.get("/").status_code == 200 and server.client.get("/page/app.js").status_code == 200
        for path in ("/items", "/model/verdict", "/release/pictures/group_utility.png"):
            assert server.client.get(path).status_code == 401, path
            assert server.client.get(path, headers={"X-API-Key": KEY}).status_code == 200, path
