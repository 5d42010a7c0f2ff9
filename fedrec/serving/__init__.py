"""Serving a released model over HTTP (``fedrec serve``): FastAPI + uvicorn over a release
folder (``fedrec.release.bundle``), in the shop's own item ids.

- ``release_loader``: open and verify a release, refuse anything else (ConfigError)
- ``catalog``: items.parquet, shop ids <-> dense ids, catalog columns
- ``fold_in``: MF user vectors from a history in closed form
- ``neighbours``: nearest items in the model's item space, or by catalog attributes
- ``reasons``: a reason per answered item, from the catalog or the model only
- ``recommender``: basket -> recommendations, item -> similar items (no HTTP)
- ``metrics``: Prometheus counters and latency histograms
- ``middleware``: the API key and body limits before the app, metrics, the access log
- ``api_docs``: /docs and /redoc with their files served from the installed package
- ``live_release``: the release being served, reloaded on request or when its folder changes
- ``app``: the FastAPI app (``create_app``)
- ``launch``: ``serve`` in uvicorn, one process or several workers (``app_from_env``)
"""

from __future__ import annotations

from fedrec.serving.app import create_app
from fedrec.serving.launch import serve
from fedrec.serving.recommender import ReleaseRecommender, RequestProblem, UnknownItem
from fedrec.serving.release_loader import Release, open_release

__all__ = ["Release", "ReleaseRecommender", "RequestProblem", "UnknownItem", "create_app", "open_release", "serve"]
