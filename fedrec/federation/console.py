"""Flower's and Ray's lines in a simulation's log, each said once.

Where fedrec formats the process (``fedrec.logs.configure``: the ``fedrec`` command, and each
Ray worker of the run through ``WorkerLogs``), their lines go through its handlers, in its
format. Otherwise (the Python API, a caller's own logging) they keep their own handlers,
Flower's without colour off a terminal. Found before: Flower's console handler colours its
lines even into a file, Opacus' import-time ``logging.basicConfig`` gave the workers' lines a
second timestamp format, and Ray prefixed each with a coloured ``(ClientAppActor pid=...)``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import ray

from fedrec import logs


def flower_lines(*, verbose: bool) -> None:
    """Flower's warnings (all its lines if ``verbose``), without its notices about how fedrec
    drives it."""
    from flwr.common.logger import FLOWER_LOGGER, console_handler, set_logger_propagation, update_console_handler

    if verbose:  # run_simulation(verbose_logging=True) shows Flower's DEBUG
        FLOWER_LOGGER.removeFilter(_not_about_the_run)
    else:
        FLOWER_LOGGER.addFilter(_not_about_the_run)  # (adding it again is a no-op)
    if logs.formats_process():
        FLOWER_LOGGER.removeHandler(console_handler)
        FLOWER_LOGGER.setLevel(logging.DEBUG if verbose else logging.WARNING)
        set_logger_propagation(FLOWER_LOGGER, True)
    else:  # the root may hold Opacus' handler, which would print each line again
        set_logger_propagation(FLOWER_LOGGER, False)
        update_console_handler(level=None if verbose else logging.WARNING, colored=sys.stderr.isatty())


def _not_about_the_run(record: logging.LogRecord) -> bool:
    """Flower notices about how fedrec drives it, not about the user's run: the simulation
    entry point's deprecation, "federated evaluation will be skipped" when the server
    evaluates instead (fedrec's recipes choose one or the other), and each Ray worker's
    "Manually terminating ClientAppActor" when the run ends."""
    message = record.getMessage()
    return not any(notice in message for notice in (
        "`run_simulation` function is deprecated", "Federated evaluation will be skipped",
        "Manually terminating ClientAppActor"))


def ray_log_args(*, verbose: bool) -> dict[str, Any]:
    """``ray.init`` arguments for the run's log: its workers log in fedrec's format and the
    driver prints their lines as they are (Ray adds no prefix under a job logging config);
    Ray's own driver lines, warnings only unless ``verbose``, in fedrec's format where fedrec
    formats the process."""
    level = logging.INFO if verbose else logging.WARNING
    found: dict[str, Any] = {"logging_config": WorkerLogs(verbose=verbose)}
    if logs.formats_process():
        ray_logger = logging.getLogger("ray")
        ray_logger.setLevel(level)
        ray_logger.propagate = True
        found["configure_logging"] = False  # Ray's switch to leave its logger to the application
    else:
        found["logging_level"] = level
    return found


@dataclasses.dataclass
class WorkerLogs(ray.LoggingConfig):
    """Ray's job logging config (``ray.init(logging_config=...)``, applied in every worker of
    the run): each worker logs in fedrec's format, warnings only (DEBUG if ``verbose``), and
    its data loading says nothing the driver did not say first: each worker reads the very
    file the driver read and reported on."""

    verbose: bool = False

    def _configure_logging(self) -> None:
        if not ray.is_initialized():  # in the driver, inside ray.init: the caller's setup stands
            return
        level = logging.DEBUG if self.verbose else logging.WARNING
        logs.configure(level)
        logging.getLogger("fedrec.data").setLevel(logging.ERROR)
        ray_logger = logging.getLogger("ray")
        ray_logger.handlers.clear()
        ray_logger.setLevel(logging.INFO if self.verbose else logging.WARNING)
        ray_logger.propagate = True
        flower_lines(verbose=self.verbose)
