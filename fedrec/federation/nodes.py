"""The server waiting for its stores: the one place a run polls the Grid for connected nodes."""

from __future__ import annotations

import time

from flwr.serverapp import Grid


def wait_for_nodes(grid: Grid, wanted: int, timeout: float) -> list[int]:
    """The connected node ids once ``wanted`` are there, or whoever is there at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        node_ids = list(grid.get_node_ids())
        if len(node_ids) >= wanted or time.monotonic() > deadline:
            return node_ids
        time.sleep(1.0)
