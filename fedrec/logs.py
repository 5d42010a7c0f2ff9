"""fedrec's one log line format, ``HH:MM:SS LEVEL [logger] message``, and who sets it up.

- A process fedrec owns (the ``fedrec`` command, a Ray worker of ``fedrec simulate``) gets
  it for every logger (``configure``): fedrec's own at the level asked, everyone else's
  (Flower, Ray, Opacus, Python's warnings) at WARNING, so a run captured to a file reads in
  one format. Done before Opacus is imported, whose import-time ``logging.basicConfig``
  would otherwise give the root logger a second format.
- The Python API attaches a handler to fedrec's logger only, and only when the caller has
  configured no logging at all (``attach_default_handler``), as well-behaved libraries do;
  importing fedrec configures nothing.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
DATEFMT = "%H:%M:%S"


class Format(logging.Formatter):
    """fedrec's format; its class marks the handlers fedrec set up (tqdm's logging redirect
    copies the formatter to the handler it puts in their place)."""

    def __init__(self) -> None:
        super().__init__(FORMAT, datefmt=DATEFMT)

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip("\n")  # Python's warnings end in a newline: no blank line


def handler() -> logging.Handler:
    """A stderr handler in fedrec's format."""
    made = logging.StreamHandler()
    made.setFormatter(Format())
    return made


def configure(level: int, *, others: int = logging.WARNING) -> logging.Logger:
    """This whole process's log in fedrec's format: fedrec's loggers at ``level`` (their own
    handler), other libraries' lines and Python's warnings through the root's, which is at
    ``others`` (a library that sets its own logger's level, as Flower does, is set where it
    is driven: fedrec.federation.console). Returns fedrec's logger."""
    logging.basicConfig(handlers=[handler()], level=others, force=True)
    logging.captureWarnings(True)  # "file:line: UserWarning: ..." as a log line, not bare on stderr
    fedrec = logging.getLogger("fedrec")
    fedrec.handlers[:] = [handler()]
    fedrec.setLevel(level)
    fedrec.propagate = False
    return fedrec


def formats_process() -> bool:
    """True where ``configure`` set this process's log up (so other libraries' lines may be
    sent to the root logger: they come out in fedrec's format)."""
    return any(isinstance(h.formatter, Format) for h in logging.getLogger().handlers)


def attach_default_handler() -> None:
    """For the Python API: fedrec's progress on stderr at INFO when the caller configured no
    logging (neither fedrec's logger nor the root has a handler); otherwise nothing changes.
    A level set before (``logging.getLogger("fedrec").setLevel(logging.WARNING)``) is kept.
    The handler does not propagate: Opacus, imported later, gives the root a handler of its
    own, which would print every line a second time."""
    fedrec = logging.getLogger("fedrec")
    if fedrec.handlers or logging.getLogger().handlers:
        return
    fedrec.addHandler(handler())
    if fedrec.level == logging.NOTSET:
        fedrec.setLevel(logging.INFO)
    fedrec.propagate = False
