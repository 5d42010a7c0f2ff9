"""Leave-one-out split as in S3-Rec: last item test, second last validation, rest train."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrec.data.interactions import Interactions
from fedrec.errors import DataError


@dataclass(frozen=True)
class EvalSet:
    """Who is evaluated, what they had seen (model input and ranking mask), what comes next."""

    users: np.ndarray  # (U,) dense user indices
    histories: list[np.ndarray]  # per user: the input sequence, oldest first
    targets: np.ndarray  # (U,) held-out item index


@dataclass(frozen=True)
class LeaveOneOut:
    train: list[np.ndarray]  # per user: sequence[:-2]
    valid: EvalSet  # input sequence[:-2] -> target sequence[-2]
    test: EvalSet  # input sequence[:-1] -> target sequence[-1]
    n_items: int
    train_ratings: list[np.ndarray] | None = None  # aligned with train, when the log has ratings

    @property
    def n_users(self) -> int:
        return len(self.train)


def leave_one_out(data: Interactions) -> LeaveOneOut:
    short = [u for u, s in enumerate(data.sequences) if len(s) < 3]
    if short:
        raise DataError(
            f"{len(short)} user(s) have fewer than 3 interactions (first: user index {short[0]}); "
            "leave-one-out needs 3. Load with min_interactions >= 3."
        )
    users = np.arange(data.n_users, dtype=np.int64)
    seqs = data.sequences
    return LeaveOneOut(
        train=[s[:-2] for s in seqs],
        valid=EvalSet(users, [s[:-2] for s in seqs], np.array([s[-2] for s in seqs], dtype=np.int64)),
        test=EvalSet(users, [s[:-1] for s in seqs], np.array([s[-1] for s in seqs], dtype=np.int64)),
        n_items=data.n_items,
        train_ratings=None if data.ratings is None else [r[:-2] for r in data.ratings],
    )
