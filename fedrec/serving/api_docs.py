"""The API's documentation pages, /docs (Swagger UI) and /redoc, with every file they load
served by this server, so they render with no network: FastAPI's own pages load their
scripts from a CDN and stay blank offline.

The files come from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc; only its files
are used, not its code): Swagger UI 4, as ``swagger-ui-bundle`` ships it, cannot read the
OpenAPI 3.1 schema that FastAPI writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from fedrec.serving.recommender import RequestProblem

ASSETS_URL = "/docs/assets"
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript"}  # what ASSETS_URL serves, and nothing else


class NoSuchAsset(RequestProblem):
    status = 404


def assets_folder() -> Path:
    """The folder of the fastapi-offline package's static files (found without importing it)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("fastapi-offline is not installed; `pip install -e .` installs it (it ships the files "
                                  "of /docs and /redoc)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def add_docs(app: FastAPI, *, favicon_url: str) -> None:
    """/docs, /redoc and their files under ASSETS_URL; ``app`` must be made with
    docs_url=None and redoc_url=None (FastAPI's CDN pages)."""
    folder = assets_folder()

    def prefix(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")  # behind a proxy that mounts the app under a path

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = prefix(request)
        # validatorUrl None: no badge image from validator.swagger.io
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=root + favicon_url, swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(openapi_url=root + app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js", redoc_favicon_url=root + favicon_url,
                              with_google_fonts=False)

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NoSuchAsset(f"no documentation file {name[:60]!r}.")
        return FileResponse(folder / name, media_type=ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})
