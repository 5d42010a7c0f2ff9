"""The ASGI middleware in front of the serving app (``Observe``): the limits a hostile client
meets before the app parses anything, the request metrics, and one access-log line per
request.

The access log (logger ``fedrec.serving.access``, INFO) is ``METHOD PATH STATUS MS ms``: the
path as sent, percent-encoded, without its query string; never a header (so never the API
key) and never the body (a shopping history)."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from fastapi.responses import JSONResponse

from fedrec.serving.auth import HEADER, key_problem
from fedrec.serving.metrics import Metrics

access_log = logging.getLogger("fedrec.serving.access")

MAX_BODY_BYTES = 1 << 20
MAX_LOGGED_PATH = 200  # characters of a path the access log keeps (a hostile path can be long)


class Observe:
    """Request counts and latency per route template, an access-log line per request, and:
    a protected path without the right X-API-Key is answered 401 before its body is read; a
    body over MAX_BODY_BYTES is answered 413, by its Content-Length or, chunked or not, as
    soon as the bytes read pass the limit (at most MAX_BODY_BYTES are ever held); the app
    then gets the body read so far."""

    def __init__(self, app: Any, metrics: Metrics, api_key: str | None, protected: list) -> None:
        self.app, self.metrics, self.api_key = app, metrics, api_key
        self.protected = protected  # the routes that need the key (filled once the app has its routes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def record(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            problem = self._key_problem(scope, headers)
            if problem is not None:
                await JSONResponse({"detail": problem}, status_code=401,
                                   headers={"WWW-Authenticate": HEADER})(scope, receive, record)
            elif length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                await too_large(f"request body of {int(length)} bytes")(scope, receive, record)
            else:
                body = await _read_body(receive)
                if body is None:
                    await too_large("the request body")(scope, receive, record)
                else:
                    await self.app(scope, _replay(body, receive), record)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope.get("method", ""), route, status, seconds)
            access_log.info("%s %s %d %.1f ms", scope.get("method", ""), logged_path(scope), status, seconds * 1000)

    def _key_problem(self, scope: dict, headers: dict) -> str | None:
        if self.api_key is None or not any(route.path_regex.match(scope.get("path", "")) for route in self.protected):
            return None
        return key_problem(self.api_key, headers.get(HEADER.lower().encode("latin-1")))


def logged_path(scope: dict) -> str:
    """The request's path as the client sent it (percent-encoded: no newline or control
    character reaches the log), without the query string, cut at MAX_LOGGED_PATH characters."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope.get("path", ""), safe="/:@!$&'()*+,;=-._~")
    path = quote(path.split("?", 1)[0], safe="/:@!$&'()*+,;=-._~%")
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."


def too_large(what: str) -> JSONResponse:
    return JSONResponse({"detail": f"{what} is over the {MAX_BODY_BYTES}-byte limit; send the most recent items only."},
                        status_code=413)


async def _read_body(receive: Any) -> bytes | None:
    """The request's body, chunked or not, or None as soon as it passes MAX_BODY_BYTES (the
    rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI receive that hands the app ``body`` once, then what the client sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed
