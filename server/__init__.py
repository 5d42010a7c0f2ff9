"""Flower ServerApp of fedrec."""
