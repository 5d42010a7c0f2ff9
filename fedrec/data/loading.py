"""One entry point from a ``--data`` value to :class:`Interactions`."""

from __future__ import annotations

import dataclasses
import logging
import sys
from importlib import resources
from pathlib import Path

from fedrec.data.interactions import Interactions
from fedrec.data.readers import SEQUENCE_SUFFIXES, TABULAR_SUFFIXES, read_interaction_log, read_sequence_file
from fedrec.errors import DataError

log = logging.getLogger("fedrec.data")

BEAUTY = "beauty"


def beauty_path() -> Path:
    """The embedded Amazon Beauty sequence file (S3-Rec preprocessing), shipped in the package.

    Under ``flwr run`` the apps import fedrec from the app bundle (FAB), which Flower
    restricts to .py/.toml/.md/.json files, so Beauty.txt is missing there; the copy of
    the fedrec installed on the host (regular or editable install) is used instead.
    """
    packaged = Path(str(resources.files("fedrec.data").joinpath("beauty", "Beauty.txt")))
    if packaged.exists():
        return packaged
    roots = [Path(entry) / "fedrec" for entry in sys.path if entry]
    for finder in sys.meta_path:  # editable installs map the package through a finder
        spec = finder.find_spec("fedrec", None) if hasattr(finder, "find_spec") else None
        roots += [Path(location) for location in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        if (root / "data" / "beauty" / "Beauty.txt").is_file():
            return root / "data" / "beauty" / "Beauty.txt"
    raise DataError(
        f"{packaged}: the embedded Beauty data is missing. Install fedrec on this host "
        "(pip install fedrec) or pass the path of a data file instead of 'beauty'."
    )


def load_dataset(spec: str, *, min_interactions: int = 3, short_users: str = "drop") -> Interactions:
    """``beauty`` or a path; the suffix picks the reader (.txt sequences, .csv/.parquet logs)."""
    path = beauty_path() if spec == BEAUTY else Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix in SEQUENCE_SUFFIXES:
        data = read_sequence_file(path, min_interactions=min_interactions, short_users=short_users)
    elif suffix in TABULAR_SUFFIXES:
        data = read_interaction_log(path, min_interactions=min_interactions, short_users=short_users)
    else:
        raise DataError(
            f"{spec!r}: unknown data format {suffix or '(no suffix)'!r}. Use 'beauty', a sequence "
            f"file ({', '.join(SEQUENCE_SUFFIXES)}) or an interaction log ({', '.join(TABULAR_SUFFIXES)})."
        )
    if spec == BEAUTY:
        data = dataclasses.replace(data, source=BEAUTY)
    log.info(
        "loaded %s: %d users, %d items, %d interactions",
        data.source, data.n_users, data.n_items, data.n_interactions,
    )
    return data
