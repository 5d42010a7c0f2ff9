"""HTTP conventions of `fedrec serve` over a real uvicorn process: a body that is not
declared JSON is answered 415; each request leaves one access-log line (method, path,
status, milliseconds) that holds neither the body nor the API key nor the query string; and
/docs and /redoc load only files this server serves (the browser test renders them offline)."""

from __future__ import annotations

import re
import time

import pytest

from tests.serving.conftest import running

KEY = "conventions-key-5e2a"
SECRET_ITEM = "basket-item-7f3c91"  # would only reach the log through a body


@pytest.fixture(scope="module")
def server(releases, server_logs):
    yield from running(releases("itemknn"), server_logs / "conventions.log", kind="itemknn", api_key=KEY)


def access_lines(server, *, after: int, count: int) -> list[str]:
    """The server log's access lines written after character ``after``, once ``count`` are there."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in server.log.read_text(errors="replace")[after:].splitlines()
                 if re.search(r" \d{3} \d+\.\d ms$", line)]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None],
                         ids=["text", "form", "xml", "none"])
def test_a_body_not_declared_json_is_answered_415_naming_the_fix(server, content_type):
    headers = {"X-API-Key": KEY, **({"Content-Type": content_type} if content_type else {})}

    reply = server.client.post("/recommend", content=b'{"items": ["1"], "k": 3}', headers=headers)

    assert reply.status_code == 415, reply.text
    assert "application/json" in reply.json()["detail"]
    assert (content_type or "no Content-Type") in reply.json()["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.shop+json"])
def test_json_content_types_with_parameters_or_suffixes_are_read(server, content_type):
    reply = server.client.post("/recommend", content=b'{"items": ["1"], "k": 3}',
                               headers={"X-API-Key": KEY, "Content-Type": content_type})

    assert reply.status_code == 200, reply.text
    assert len(reply.json()["items"]) == 3


def test_a_request_with_no_body_at_all_is_told_what_is_missing(server):
    reply = server.client.post("/recommend", headers={"X-API-Key": KEY})

    assert reply.status_code == 422 and "missing" in reply.json()["detail"]


def test_the_key_is_checked_before_the_content_type(server):
    reply = server.client.post("/recommend", content=b"1 2 3", headers={"Content-Type": "text/plain"})

    assert reply.status_code == 401


def test_each_request_logs_one_line_with_method_path_status_and_ms_only(server):
    before = len(server.log.read_text(errors="replace"))

    server.client.post("/recommend", json={"items": [SECRET_ITEM, "1"], "k": 2}, headers={"X-API-Key": KEY})
    server.client.get("/items", params={"query": "secret search words"}, headers={"X-API-Key": KEY})
    server.client.get("/items/%0Afake%20line/similar", headers={"X-API-Key": KEY})
    server.client.get("/livez")
    lines = access_lines(server, after=before, count=4)

    assert len(lines) == 4, lines
    assert re.search(r"POST /recommend 200 \d+\.\d ms$", lines[0])
    assert re.search(r"GET /items 200 \d+\.\d ms$", lines[1])  # the query string stays out
    assert re.search(r"GET /items/%0Afake%20line/similar 404 \d+\.\d ms$", lines[2])  # encoded: one line, no forged one
    assert re.search(r"GET /livez 200 \d+\.\d ms$", lines[3])
    written = server.log.read_text(errors="replace")[before:]
    assert SECRET_ITEM not in written and "secret" not in written and KEY not in written
    assert not re.search(r'"(GET|POST) /', written)  # uvicorn's own access log (with query strings) is off
