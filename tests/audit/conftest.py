"""A synthetic evaluated population: what one evaluation pass hands the audits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Population:
    keys: np.ndarray  # (U,) raw customer ids (strings, as pseudonyms are)
    ranks: np.ndarray  # (U,) 0-based rank of the held-out item
    top_items: np.ndarray  # (U, K) item ids 1..n_items
    histories: list[np.ndarray]
    stores: np.ndarray  # (U,) store names
    n_items: int

    def rows(self, chosen: np.ndarray) -> "Population":
        return Population(self.keys[chosen], self.ranks[chosen], self.top_items[chosen],
                          [self.histories[i] for i in chosen], self.stores[chosen], self.n_items)


def make_population(n_users: int, *, n_items: int = 60, k: int = 10, seed: int = 0) -> Population:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)  # a long tail: item 1 most popular
    weights /= weights.sum()
    top = np.stack([rng.choice(np.arange(1, n_items + 1), k, replace=False, p=weights) for _ in range(n_users)])
    histories = [rng.choice(np.arange(1, n_items + 1), int(rng.integers(3, 30)), p=weights) for _ in range(n_users)]
    return Population(
        keys=np.array([f"cust-{rng.integers(1 << 40):011x}-{u}" for u in range(n_users)]),
        ranks=rng.geometric(0.08, n_users) - 1,
        top_items=top.astype(np.int64),
        histories=histories,
        stores=rng.choice(["north", "south", "west"], n_users, p=[0.5, 0.3, 0.2]),
        n_items=n_items,
    )


@pytest.fixture(scope="module")
def population() -> Population:
    return make_population(600)
