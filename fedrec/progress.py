"""Progress of long work: a tqdm bar on a terminal, the time left in the log line of each
round or epoch everywhere.

A bar is drawn only where the logger its work reports to says INFO (``fedrec --quiet``
hides bars, and so do Ray workers, whose fedrec loggers stay at WARNING) and stderr is a
terminal (tqdm's ``disable=None``): a log written to a file or a pipe gets no bar frames,
so the log lines carry the time left instead.
"""

from __future__ import annotations

import logging
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def bar(iterable: Iterable[T] | None = None, *, logger: logging.Logger, desc: str, total: int | None = None,
        unit: str = "it") -> tqdm:
    """A transient bar (gone when done) that redraws at most once a second."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, mininterval=1.0,
                disable=None if logger.isEnabledFor(logging.INFO) else True)


def time_left(seconds_so_far: float, done: int, total: int, *, at_most: float | None = None) -> str:
    """'~10 min left' at the mean pace so far, capped by ``at_most`` (a wall-time budget's
    rest); '' when done or when nothing is done yet."""
    if done <= 0 or done >= total:
        return ""
    seconds = seconds_so_far / done * (total - done)
    if at_most is not None:
        seconds = min(seconds, max(0.0, at_most))
    return f"~{duration(seconds)} left"


def duration(seconds: float) -> str:
    """A span for people: '45 s', '12 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
