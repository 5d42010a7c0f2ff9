"""Starting the serving app: ``serve`` (``fedrec serve``) in uvicorn, one process or
several workers, and ``app_from_env``, the factory each worker builds its app with.

Workers are separate processes started by uvicorn: they get what they need through the
environment (the release folder, the API key's file path, never the key itself, torch
threads, the watch period).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from fedrec.errors import ConfigError
from fedrec.serving.app import create_app
from fedrec.serving.auth import read_api_key_file
from fedrec.serving.release_loader import open_release

RELEASE_ENV = "FEDREC_SERVE_RELEASE"  # app_from_env: the release folder
API_KEY_FILE_ENV = "FEDREC_SERVE_API_KEY_FILE"  # app_from_env: optional file holding the API key
TORCH_THREADS_ENV = "FEDREC_SERVE_TORCH_THREADS"  # app_from_env: torch threads per worker
WATCH_ENV = "FEDREC_SERVE_WATCH_SECONDS"  # app_from_env: how often to look for a new release (0: never)
WATCH_SECONDS = 2.0  # serve(workers > 1): each worker looks for a new release this often


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory fedrec.serving.launch:app_from_env`` (e.g. several workers): the
    release from $FEDREC_SERVE_RELEASE, the key from the file in $FEDREC_SERVE_API_KEY_FILE,
    torch threads from $FEDREC_SERVE_TORCH_THREADS, the watch period from
    $FEDREC_SERVE_WATCH_SECONDS."""
    folder = os.environ.get(RELEASE_ENV)
    if not folder:
        raise ConfigError(f"set {RELEASE_ENV} to the release folder to serve.")
    key_file = os.environ.get(API_KEY_FILE_ENV)
    threads = os.environ.get(TORCH_THREADS_ENV)
    return create_app(folder, api_key=read_api_key_file(key_file) if key_file else None,
                      torch_threads=int(threads) if threads else None, watch_seconds=float(os.environ.get(WATCH_ENV) or 0))


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with fedrec.serving's messages (the access log among them) beside its own."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["fedrec.serving"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(release_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, api_key: str | None = None, *,
          api_key_file: str | Path | None = None, workers: int = 1, torch_threads: int | None = 1,
          log_level: str = "info") -> None:
    """Serve the release at ``release_dir`` until interrupted (``fedrec serve``). The release
    is opened first, so a folder that is not a servable release fails here with its
    ConfigError before any port is bound. ``port=0`` picks a free port (uvicorn logs it).

    ``workers`` > 1: uvicorn's worker processes, each building its app with
    ``app_from_env``; the key then reaches them as its file's path (``api_key_file``),
    never as a value in their environment, and each watches the folder for a new release."""
    import uvicorn

    if workers < 1:
        raise ConfigError(f"--workers {workers}: give 1 or more worker processes.")
    if torch_threads is not None and torch_threads < 1:
        raise ConfigError(f"--torch-threads {torch_threads}: give 1 or more.")
    if api_key is None and api_key_file is not None:
        api_key = read_api_key_file(api_key_file)
    release = open_release(release_dir)
    # uvicorn's own access log is off: it shows the query string; fedrec.serving.access logs the path only
    options = dict(host=host, port=port, log_level=log_level, log_config=log_config(), access_log=False, server_header=False)
    if workers == 1:
        app = create_app(release_dir, api_key=api_key, release=release, torch_threads=torch_threads)
        uvicorn.run(app, **options)
        return
    if api_key is not None and api_key_file is None:
        raise ConfigError("several workers read the API key from a file: pass it as --api-key-file.")
    os.environ[RELEASE_ENV] = str(Path(release_dir).resolve())
    os.environ[WATCH_ENV] = str(WATCH_SECONDS)
    os.environ.pop(API_KEY_FILE_ENV, None)
    if api_key_file is not None:
        os.environ[API_KEY_FILE_ENV] = str(Path(api_key_file).resolve())
    if torch_threads:
        os.environ[TORCH_THREADS_ENV] = str(torch_threads)
    uvicorn.run("fedrec.serving.launch:app_from_env", factory=True, workers=workers, **options)
