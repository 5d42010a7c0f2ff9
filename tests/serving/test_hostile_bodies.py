"""A hostile client against a real uvicorn server: a chunked body of many MB, with and without
the API key. The server answers before it has read the body (401 without the key, 413 once
the limit is passed), holds at most the limit, and keeps answering."""

from __future__ import annotations

import select
import socket
from urllib.parse import urlparse

import psutil
import pytest

from fedrec.serving.middleware import MAX_BODY_BYTES
from tests.serving.conftest import running

KEY = "hostile-test-key"
CHUNK = 64 * 1024
OFFERED = 32 * 1024 * 1024  # what the client would send if nobody stopped it


@pytest.fixture(scope="module")
def server(releases, server_logs):
    yield from running(releases("itemknn"), server_logs / "hostile.log", kind="itemknn", api_key=KEY)


def send_chunked(url: str, *, key: str | None) -> tuple[int, int]:
    """POST /recommend with a chunked body of up to OFFERED bytes, a chunk at a time, stopping
    as soon as the server answers; (the status, the body bytes sent by then)."""
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        headers = [f"POST /recommend HTTP/1.1", f"Host: {address.hostname}", "Content-Type: application/json",
                   "Transfer-Encoding: chunked", *([f"X-API-Key: {key}"] if key else []), "", ""]
        connection.sendall("\r\n".join(headers).encode("latin-1"))
        sent = 0
        while sent < OFFERED:
            readable, _, _ = select.select([connection], [], [], 0.02)
            if readable:
                break
            try:
                connection.sendall(f"{CHUNK:x}\r\n".encode() + b"[" * CHUNK + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        answer = connection.recv(4096).decode("latin-1")
    return int(answer.split(" ", 2)[1]), sent


@pytest.mark.parametrize("key, status", [(None, 401), ("wrong", 401), (KEY, 413)], ids=["no key", "wrong key", "key"])
def test_a_chunked_body_of_many_mb_is_answered_before_it_is_read(server, key, status):
    memory = psutil.Process(server.process.pid)
    before = memory.memory_info().rss

    answered, sent = send_chunked(server.url, key=key)

    assert answered == status
    assert sent < (MAX_BODY_BYTES if status == 401 else 4 * MAX_BODY_BYTES)  # far short of the 32 MB offered
    assert memory.memory_info().rss - before < 8 * 1024 * 1024  # nothing like the body was held
    assert server.alive()
    assert server.client.post("/recommend", json={"items": ["1"], "k": 3}, headers={"X-API-Key": KEY}).status_code == 200
