"""Flower loads this ClientApp from the project directory (pyproject's clientapp); the code lives in fedrec.federation.client_app."""

from fedrec.federation.client_app import app

__all__ = ["app"]  # `flwr run` looks for `app` statically: an assignment or __all__, not an import
