"""Customers kept out of training for the membership-inference audit (``--audit-holdout``).

Who is held out depends only on the customer's raw id, the share and the seed (a keyed
hash), so every store, the server's audit and a later `fedrec privacy-audit` draw the same
customers without telling each other, and each customer is in or out independently of the
others: the random inclusion that one-run privacy audits assume (Steinke, Nasr & Jagielski
2023).
"""

from __future__ import annotations

import hashlib

import numpy as np

from fedrec.data.interactions import Interactions
from fedrec.data.partition.slicing import select_users


def held_out(raw_ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean mask: True for the customers kept out of training."""
    if share <= 0.0:
        return np.zeros(len(raw_ids), dtype=bool)
    draws = np.fromiter(
        (int.from_bytes(hashlib.blake2b(f"{seed}/{raw}".encode(), digest_size=8).digest(), "big") / 2.0**64 for raw in raw_ids),
        dtype=np.float64, count=len(raw_ids),
    )
    return draws < share


def split_holdout(data: Interactions, share: float, seed: int) -> tuple[Interactions, Interactions]:
    """(customers who train, customers held out), each renumbered from 0."""
    mask = held_out(data.users.raw, share, seed)
    return (select_users(data, np.flatnonzero(~mask), data.source),
            select_users(data, np.flatnonzero(mask), f"{data.source} [held out]"))
