"""A server with an API key: data endpoints need it, health checks do not; a newer release
swapped into the folder is loaded by /admin/reload while requests keep being answered; a
broken one is refused and the old one keeps serving; baskets never reach the logs."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.serving.conftest import running

KEY = "test-key-5d1c"
SECRET = "basket-item-that-must-not-be-logged-4417"


def replace_release(folder: Path, source: Path, *, tamper: bool = False) -> None:
    """Swap ``source``'s files into ``folder`` the way a new run does: a sibling folder renamed into place."""
    fresh = shutil.copytree(source, folder.with_name(".release.new"))
    if tamper:
        data = bytearray((fresh / "items.parquet").read_bytes())
        data[100] ^= 0x01
        (fresh / "items.parquet").write_bytes(bytes(data))
    old = folder.rename(folder.with_name(".release.old"))
    fresh.rename(folder)
    shutil.rmtree(old)


@pytest.fixture(scope="module")
def folder(releases, tmp_path_factory) -> Path:
    releases("mf")  # trained now, so the server is not kept waiting during the reload test
    return shutil.copytree(releases("itemknn"), tmp_path_factory.mktemp("served_run") / "release")


@pytest.fixture(scope="module")
def server(folder, server_logs):
    yield from running(folder, server_logs / "admin.log", kind="itemknn", api_key=KEY)


def keyed(key: str = KEY) -> dict[str, str]:
    return {"X-API-Key": key}


def test_data_endpoints_need_the_key_and_health_checks_do_not(server):
    body = {"items": [], "k": 3}

    assert server.client.post("/recommend", json=body).status_code == 401
    assert server.client.post("/recommend", json=body, headers=keyed("wrong")).status_code == 401
    assert "X-API-Key" in server.client.post("/recommend", json=body).json()["detail"]
    assert server.client.get("/items/1/similar").status_code == 401
    assert server.client.get("/model").status_code == 401
    assert server.client.post("/admin/reload").status_code == 401
    assert server.client.post("/recommend", json=body, headers=keyed()).status_code == 200
    assert server.client.get("/model", headers=keyed()).status_code == 200
    for open_path in ("/livez", "/readyz", "/metrics", "/docs"):
        assert server.client.get(open_path).status_code == 200, open_path


def test_baskets_never_reach_the_log(server):
    server.client.post("/recommend", json={"items": [SECRET, "1"], "k": 3}, headers=keyed())
    server.client.post("/recommend", json={"items": [SECRET], "k": "x"}, headers=keyed())
    server.client.post("/recommend", content='{"items": ["' + SECRET + '"', headers={**keyed(), "content-type": "application/json"})
    server.client.get("/readyz")  # written after the requests above: the log has caught up

    log = server.log.read_text()
    assert re.search(r"POST /recommend 200 [\d.]+ ms", log) and re.search(r"POST /recommend 400 [\d.]+ ms", log)
    assert SECRET not in log
    assert KEY not in log


def test_a_new_release_is_swapped_in_without_dropping_requests(server, folder, releases):
    assert server.client.get("/model", headers=keyed()).json()["model_parameters"]["model_architecture"] == "itemknn"
    answers: list[int | str] = []
    stop = threading.Event()

    def shop() -> None:
        while not stop.is_set():
            try:
                answers.append(server.client.post("/recommend", json={"items": ["1", "4"], "k": 5}, headers=keyed()).status_code)
            except Exception as err:  # a dropped connection is what this test looks for
                answers.append(repr(err))

    shopper = threading.Thread(target=shop)
    shopper.start()
    try:
        replace_release(folder, releases("mf"))
        reply = server.client.post("/admin/reload", headers=keyed())
        answers_during = len(answers)
        while shopper.is_alive() and len(answers) < answers_during + 3:  # a few answers from the new release
            time.sleep(0.01)
    finally:
        stop.set()
        shopper.join()

    assert reply.status_code == 200, reply.text
    assert reply.json()["previous"]["model"] == "itemknn" and reply.json()["current"]["model"] == "mf"
    assert server.client.get("/model", headers=keyed()).json()["model_parameters"]["model_architecture"] == "mf"
    assert server.client.get("/readyz").json()["model"] == "mf"
    assert answers and set(answers) == {200}
    assert server.client.post("/recommend", json={"items": ["1", "4"], "k": 5}, headers=keyed()).json()["model"] == "mf"


def test_a_broken_new_release_is_refused_and_the_old_one_keeps_serving(server, folder, releases):
    before = server.client.get("/readyz").json()
    replace_release(folder, releases("itemknn"), tamper=True)

    reply = server.client.post("/admin/reload", headers=keyed())

    assert reply.status_code == 409
    assert "items.parquet" in reply.json()["detail"] and "keeps serving" in reply.json()["detail"]
    assert server.client.get("/readyz").json() == before
    assert server.client.post("/recommend", json={"items": ["1"], "k": 2}, headers=keyed()).status_code == 200
    assert 'fedrec_serving_reloads_total{outcome="refused"} 1' in server.client.get("/metrics").text
