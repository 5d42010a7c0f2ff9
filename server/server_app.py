"""Flower loads this ServerApp from the project directory (pyproject's serverapp); the code lives in fedrec.federation.server_app."""

from fedrec.federation.server_app import app

__all__ = ["app"]  # `flwr run` looks for `app` statically: an assignment or __all__, not an import
