"""Flower loads this ClientApp from the project directory (pyproject's clientapp); the code lives in fedrec.federation.client_app."""

from fedrec.federation.client_app import app  # noqa: F401
