"""Flower ClientApp of fedrec."""
