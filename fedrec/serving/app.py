"""The HTTP API over one release (``create_app``); ``launch`` runs it in uvicorn.

The release is loaded once (lifespan) into a ``live_release.LiveRelease``, which
``POST /admin/reload`` (and, with ``watch_seconds``, a folder watcher) replaces without
dropping requests. Request bodies are shopping histories: nothing here logs them; the
access log (``middleware``) has one line per request: method, path, status, milliseconds.
A body on POST /recommend must be declared JSON (415 otherwise).

``GET /`` is a page to try the release (``page/``: plain HTML, JS and CSS, no network
beyond this server): a catalog search (``GET /items``), a basket with its recommendations
and the similar items of an item, and the model card with the release's checks
(``GET /model/verdict``) and audit pictures (``GET /release/pictures/{name}``). ``/docs``
and ``/redoc`` load their files from this server too (``api_docs``). docs/serving.md is the
user's guide to every endpoint.
"""

from __future__ import annotations

import asyncio
import email.message
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fedrec.serving.api_docs import add_docs
from fedrec.serving.auth import key_checker
from fedrec.serving.catalog import MAX_QUERY_CHARS
from fedrec.serving.live_release import LiveRelease, NotReady, release_info
from fedrec.serving.metrics import CONTENT_TYPE, Metrics
from fedrec.serving.middleware import Observe
from fedrec.serving.recommender import MAX_K, ReleaseRecommender, RequestProblem
from fedrec.serving.release_loader import Release, open_release
from fedrec.serving.schemas import Problem, RecommendRequest, RecommendResponse, SearchResponse, SimilarResponse

log = logging.getLogger("fedrec.serving")

PAGE_DIR = Path(__file__).with_name("page")  # the page's files (package data)
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}  # what /page/ serves
PICTURES = ("group_utility.png", "exposure_curve.png", "popularity.png")  # the audit's pictures (fedrec.release.gatekeeper.PLOTS)
MAX_SEARCH_RESULTS = 50
# The page loads its own script and style only, talks to this server only, and shows the
# pictures as blob: URLs (fetched with the API key).
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


class NotFound(RequestProblem):
    status = 404


class NotJson(RequestProblem):
    status = 415


async def json_body(request: Request) -> None:
    """A dependency of the endpoints that read a JSON body: 415 unless the body is declared
    application/json (or application/*+json); a request with neither body nor Content-Type
    goes on to validation, which names what is missing."""
    declared = request.headers.get("content-type")
    if declared is None and not await request.body():
        return
    if declared is None:
        raise NotJson("the body has no Content-Type; send it as JSON with Content-Type: application/json.")
    kind = email.message.Message()
    kind["content-type"] = declared
    subtype = kind.get_content_subtype()
    if kind.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise NotJson(f"Content-Type {declared[:60]!r} is not accepted: send the body as JSON with "
                      "Content-Type: application/json.")


def _where(location: tuple) -> str:
    """("body", "items", 3) -> "items.3"; ("query", "limit") -> "limit"."""
    parts = [str(p) for p in (location[1:] if location and location[0] in ("body", "query", "path", "header") else location)]
    return ".".join(parts) or "body"


def _validation_problem(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field (400 for a body that is not JSON); the request's values
    are not echoed back for the basket (it is a shopping history), only for scalars."""
    errors = exc.errors()
    broken = [e for e in errors if e.get("type") == "json_invalid"]
    if broken:
        error = broken[0].get("ctx", {}).get("error", "")
        position = broken[0].get("loc", ("body", "?"))[-1]
        return JSONResponse({"detail": f"malformed JSON body: {error} at character {position}; send a JSON object such as "
                                       '{"items": ["<item id>"], "k": 10}.'}, status_code=400)
    messages = []
    for e in errors:
        where = _where(tuple(e.get("loc", ())))
        value = e.get("input")
        scalar = isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= 40)
        shown = f" (got {value!r})" if scalar and not where.startswith("items") else ""
        if e.get("type") == "extra_forbidden":
            messages.append(f"{where}: unknown field; the fields are items, k, exclude_seen, brand, category")
        elif e.get("type") == "missing" and where == "body":
            messages.append('body: missing; send a JSON object such as {"items": ["<item id>"], "k": 10}')
        else:
            messages.append(f"{where}: {e.get('msg', 'invalid')}{shown}")
    return JSONResponse({"detail": "; ".join(messages),
                         "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]},
                        status_code=422)


def _request_problem(_: Request, exc: RequestProblem) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


def create_app(release_dir: str | Path, *, api_key: str | None = None, release: Release | None = None,
               torch_threads: int | None = None, watch_seconds: float = 0.0) -> FastAPI:
    """The serving app for the release at ``release_dir`` (loaded in the lifespan, or
    ``release`` when the caller already opened it). ``api_key``: required as X-API-Key on
    every endpoint but /livez, /readyz, /metrics, the docs and the page's own files (the
    page asks for the key and sends it). ``torch_threads``: torch's threads in this process
    (one request's scoring is too small to gain from more; several workers on few cores
    lose from it). ``watch_seconds`` > 0: look this often for a new release in the folder."""
    metrics = Metrics()
    state = LiveRelease(Path(release_dir), release, metrics)
    protected = [Depends(key_checker(api_key))]
    protected_routes: list = []  # the middleware's list of what needs the key, filled below once routes exist

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        if state.service is None:
            state.service = await run_in_threadpool(lambda: ReleaseRecommender(open_release(state.release_dir)))
        info = release_info(state.service)
        log.info("serving the %s release of %s (model sha256 %s, verdict %s)", info["model"], info["folder"],
                 info["model_sha256"][:12], info["verdict"])
        watcher = asyncio.create_task(state.watch(watch_seconds)) if watch_seconds > 0 else None
        yield
        if watcher is not None:
            watcher.cancel()

    app = FastAPI(title="fedrec serving", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Recommendations from a released fedrec model, in the shop's own item ids. "
                  "Reasons come from the catalog or the model's own scores only.")
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(RequestProblem, _request_problem)
    app.add_middleware(Observe, metrics=metrics, api_key=api_key, protected=protected_routes)
    app.state.fedrec = state
    add_docs(app, favicon_url="/page/favicon.svg")

    def current() -> ReleaseRecommender:
        service = state.service
        if service is None:
            raise NotReady("no release is loaded yet; retry when /readyz answers 200.")
        return service

    errors = {400: {"model": Problem}, 401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}

    @app.get("/livez", tags=["health"])
    def livez() -> dict[str, str]:
        """The process answers."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """200 once a release is loaded (503 before); ``worker_pid`` names the worker process that answered."""
        service = state.service
        if service is None:
            return JSONResponse({"ready": False, "worker_pid": os.getpid()}, status_code=503)
        return JSONResponse({"ready": True, "worker_pid": os.getpid(), **release_info(service)})

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus text format: requests and latency per endpoint, fallbacks, reloads."""
        service = state.service
        return Response(metrics.render(release_info(service) if service else {}), media_type=CONTENT_TYPE)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=FileResponse, include_in_schema=False)
    def page() -> FileResponse:
        """A page to try the release: find products, build a basket, see its recommendations."""
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/page/{name}", response_class=FileResponse, include_in_schema=False)
    def page_file(name: str) -> FileResponse:
        """The page's script, style and icon; nothing else."""
        if name not in PAGE_FILES:
            raise NotFound(f"no page file {name[:60]!r}.")
        return FileResponse(PAGE_DIR / name, media_type=PAGE_FILES[name], headers={"X-Content-Type-Options": "nosniff",
                                                                                   "Cache-Control": "no-cache"})

    @app.get("/model", tags=["release"], dependencies=protected, responses=errors)
    def model_card() -> dict[str, Any]:
        """The model card (model_card.json) of the release being served."""
        return current().release.card

    @app.get("/model/verdict", tags=["release"], dependencies=protected, responses=errors)
    def model_verdict() -> dict[str, Any]:
        """The release's verdict (verdict.json): each check of the release gate with its value and threshold."""
        return current().release.verdict

    @app.get("/release/pictures/{name}", tags=["release"], dependencies=protected, response_class=FileResponse,
             responses={**errors, 200: {"content": {"image/png": {}}}},
             description=f"One of the audit's pictures in the release folder: {', '.join(PICTURES)}; nothing else.")
    def picture(name: str) -> FileResponse:
        if name not in PICTURES:
            raise NotFound(f"no picture {name[:60]!r}: the release's pictures are {', '.join(PICTURES)}.")
        path = current().release.folder / name
        if not path.is_file():
            raise NotFound(f"this release has no {name} (the audit drew no such picture).")
        return FileResponse(path, media_type="image/png", headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/items", tags=["catalog"], dependencies=protected, response_model=SearchResponse, responses=errors)
    def search(query: str = Query("", max_length=MAX_QUERY_CHARS,
                                  description="words that the item's shop id, name, brand or category must all contain "
                                  "(case-insensitive); an exact shop id comes first; empty: the whole catalog"),
               limit: int = Query(20, ge=1, le=MAX_SEARCH_RESULTS, description=f"items per page, 1 to {MAX_SEARCH_RESULTS}"),
               offset: int = Query(0, ge=0, le=10_000_000, description="how many matches to skip")) -> dict[str, Any]:
        """Catalog search (item id, name, brand, category only), paged."""
        catalog = current().catalog
        total, found = catalog.search(query, limit=limit, offset=offset)
        return {"query": query, "total": total, "offset": offset, "limit": limit,
                "items": [catalog.describe(i) for i in found]}

    @app.post("/recommend", tags=["recommend"], dependencies=[*protected, Depends(json_body)], response_model=RecommendResponse,
              responses={**errors, 413: {"model": Problem}, 415: {"model": Problem}})
    def recommend(body: RecommendRequest) -> dict[str, Any]:
        """Top-k items for a basket (oldest first), with a reason each."""
        answer = current().recommend([str(i) for i in body.items], k=body.k, exclude_seen=body.exclude_seen,
                                     brand=body.brand, category=body.category)
        if answer["fallback"]:
            metrics.count("fallbacks", "/recommend")
        return answer

    @app.get("/items/{item_id}/similar", tags=["recommend"], dependencies=protected, response_model=SimilarResponse,
             responses=errors)
    def similar(item_id: str, k: int = Query(10, ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")) -> dict[str, Any]:
        """The items nearest to one item in the model (attribute neighbours when the model has none)."""
        answer = current().similar(item_id, k=k)
        if answer["fallback"]:
            metrics.count("fallbacks", "/items/{item_id}/similar")
        return answer

    @app.post("/admin/reload", tags=["admin"], dependencies=protected, responses={409: {"model": Problem}})
    def reload() -> dict[str, Any]:
        """Load the release folder again (a newer run may have replaced it) and swap it in;
        requests keep being answered throughout. A release that fails to load is refused
        (409) and the current one keeps serving."""
        previous, fresh = state.reload()
        return {"reloaded": True, "previous": release_info(previous), "current": release_info(fresh)}

    protected_routes.extend(route for route in app.routes
                            if any(dependency in protected for dependency in getattr(route, "dependencies", [])))
    return app
