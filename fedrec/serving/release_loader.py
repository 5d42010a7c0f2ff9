"""Open a release folder (``DIR/release/``, see ``fedrec.release.bundle``) for serving, and
refuse anything else: a folder that is not a release, a release whose verdict is not
"passed" or "overridden", files that no longer match checksums.sha256, a model that does
not fit its item index. Every refusal is a ``ConfigError`` naming the problem and the fix.

A release is replaced by renaming a new folder into place; a reload that overlaps such a
swap could read files of both. The checksums are verified before anything is parsed and the
checksum file is read again after loading: a changed one means a mixed read, refused (a
reload can simply be retried).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fedrec.errors import ConfigError, FedrecError
from fedrec.models.base import Recommender
from fedrec.models.registry import load_model
from fedrec.release.bundle import CHECKSUMS, verify_checksums

REQUIRED = ("model.pt", "items.parquet", "popularity.json", "verdict.json", "model_card.json", CHECKSUMS)
SERVABLE = ("passed", "overridden")


@dataclass(frozen=True)
class Release:
    """What a release folder holds, loaded and verified."""

    folder: Path
    model: Recommender
    items: pd.DataFrame  # items.parquet
    popularity: dict[str, Any]  # popularity.json
    verdict: dict[str, Any]  # verdict.json
    card: dict[str, Any]  # model_card.json
    checksums: str  # checksums.sha256's text: identifies this release

    @property
    def model_sha256(self) -> str | None:
        return self.verdict.get("model_sha256")


def resolve_folder(path: str | Path) -> Path:
    """The release folder itself; a run directory stands for its ``release/``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"{folder}: no such folder. Give the release folder a run wrote (RUN_DIR/release/, written when "
            "the release gate passes: fedrec train, fedrec audit, or fedrec release --override-reason)."
        )
    if not (folder / "verdict.json").exists() and (folder / "release" / "verdict.json").exists():
        return folder / "release"
    return folder


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    try:
        value = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{folder / name}: not readable JSON ({err}); copy the release folder again from its run.") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{folder / name}: expected a JSON object; copy the release folder again from its run.")
    return value


def open_release(path: str | Path) -> Release:
    """Load and verify the release at ``path`` (or ``path``/release/); raises ConfigError."""
    folder = resolve_folder(path)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        hint = (" It looks like a run directory whose model was never released: run `fedrec audit "
                f"{folder}` (or `fedrec release {folder} --override-reason ...`) and serve {folder / 'release'}."
                if (folder / "model.pt").exists() or (folder / "metrics.json").exists() else
                " Serve the release/ folder of a run whose release gate passed (or was overridden).")
        raise ConfigError(f"{folder}: not a fedrec release (missing {', '.join(missing)}).{hint}")
    before = (folder / CHECKSUMS).read_text(encoding="utf-8")
    changed = verify_checksums(folder)
    if changed:
        raise ConfigError(
            f"{folder}: {', '.join(changed)} do not match checksums.sha256 (the release was modified, or copied in part). "
            "Copy the whole release folder again from its run, or re-release it (fedrec audit RUN_DIR)."
        )
    verdict = _read_json(folder, "verdict.json")
    if verdict.get("verdict") not in SERVABLE:
        raise ConfigError(
            f"{folder}: its verdict is {verdict.get('verdict')!r}; only a release that passed its audit (or was "
            "released with `fedrec release RUN_DIR --override-reason ...`) may be served."
        )
    try:
        model = load_model(folder / "model.pt")
        items = pd.read_parquet(folder / "items.parquet")
    except (FedrecError, OSError, ValueError) as err:
        raise ConfigError(f"{folder}: the model or item index cannot be read ({err}); copy the release folder again from its run.") from None
    popularity = _read_json(folder, "popularity.json")
    card = _read_json(folder, "model_card.json")
    if (folder / CHECKSUMS).read_text(encoding="utf-8") != before:
        raise ConfigError(f"{folder}: the release was replaced while it was being read; load it again.")
    _check_index(folder, model, items, popularity)
    return Release(folder=folder, model=model, items=items, popularity=popularity, verdict=verdict, card=card, checksums=before)


def _check_index(folder: Path, model: Recommender, items: pd.DataFrame, popularity: dict[str, Any]) -> None:
    if not {"item", "item_id"} <= set(items.columns):
        raise ConfigError(f"{folder / 'items.parquet'}: needs columns item and item_id; re-release the run with this fedrec.")
    if sorted(items["item"].tolist()) != list(range(1, model.n_items + 1)):
        raise ConfigError(
            f"{folder}: items.parquet lists {len(items)} items but the model scores {model.n_items}; "
            "the files come from different runs. Copy the whole release folder again from one run."
        )
    if items["item_id"].astype(str).duplicated().any():
        raise ConfigError(f"{folder / 'items.parquet'}: item_id values repeat; each shop id must name one item.")
    if not isinstance(popularity.get("items"), list):
        raise ConfigError(f"{folder / 'popularity.json'}: has no items list; re-release the run with this fedrec.")
