"""DIR/release/: what serving loads, and nothing private.

    model.pt           the model without per-user vectors (MF: item side only; a user is
                       folded in from their history at serving time)
    items.parquet      the item index: dense id -> raw item id, with the catalog columns
    popularity.json    the fallback ranking for users with no usable history
    config.json        the resolved training config, the audit config, the data summary
    audit.json         the audit the release passed (or was overridden past)
    verdict.json       passed | overridden, the checks, the override's reason/user/time
    model_card.json    model-card-toolkit field names; model_card.md for people
    *.png              the audit's pictures
    checksums.sha256   `sha256sum -c checksums.sha256` verifies every other file

The folder is built beside the run and renamed into place, so a reader sees the previous
release or the new one, never a half-written one; no client state and no data rows travel.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from fedrec.data import Interactions
from fedrec.models.base import Recommender
from fedrec.models.registry import create_model
from fedrec.models.torch_model import TorchRecommender
from fedrec.rundir import RunDir, sha256_file, write_json

CHECKSUMS = "checksums.sha256"
FALLBACK_ITEMS = 100  # the popularity fallback keeps the head of the ranking, enough for any page


def serving_model(model: Recommender) -> Recommender:
    """The model with its per-user parameters dropped (MF's user embedding): what a client
    keeps never ships, and serving folds a user in from their history instead."""
    if not isinstance(model, TorchRecommender) or not model.private_state():
        return model
    stripped = create_model(model.name, model.config, n_users=0, n_items=model.n_items)
    stripped.load_partial_state(model.shareable_state())
    return stripped


def item_index(data: Interactions) -> pd.DataFrame:
    """One row per item: its dense id (what the model scores), raw id, and catalog columns."""
    frame = pd.DataFrame({"item": np.arange(1, data.n_items + 1, dtype=np.int64),
                          "item_id": [str(raw) for raw in data.items.to_raw(range(1, data.n_items + 1))]})
    if data.item_attributes is not None:
        columns = data.item_attributes.reindex(pd.RangeIndex(1, data.n_items + 1)).reset_index(drop=True)
        for column in columns.columns:
            values = columns[column]
            frame[str(column)] = values.map(_plain) if values.dtype == object else values.to_numpy()
    return frame


def _plain(value: Any) -> Any:
    """Attribute lists (Beauty's brand/category ids) as a space-separated string: one Parquet type."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return " ".join(str(v) for v in value)
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def popularity_fallback(model: Recommender, data: Interactions, counts: np.ndarray | None, source: str) -> dict[str, Any]:
    """The ranking served to a user with no usable history: ``counts`` (what the run may
    release: exact training counts, or under DP the popularity prior DP released) or, when
    there are none, the released model's own ranking for an empty history, post-processing
    of what DP already covers, at no further privacy cost."""
    if counts is None:
        with torch.no_grad():
            scores = model.score(np.zeros(1, dtype=np.int64), [np.zeros(0, dtype=np.int64)])[0].float().numpy().copy()
        source = f"the released model's scores for an empty history ({source})"
    else:
        scores = np.asarray(counts, dtype=np.float64).copy()
    scores[0] = -np.inf
    order = np.argsort(-scores, kind="stable")[: min(FALLBACK_ITEMS, data.n_items)]
    return {"source": source, "items": [int(i) for i in order],
            "item_ids": [str(raw) for raw in data.items.to_raw(order)],
            "scores": [float(scores[i]) for i in order]}


def checksums(folder: Path) -> str:
    """sha256sum's format over every file but the checksum file itself, sorted by name."""
    lines = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS):
        lines.append(f"{sha256_file(path)}  {path.name}")
    return "\n".join(lines) + "\n"


def verify_checksums(folder: Path) -> list[str]:
    """Names of files whose content no longer matches checksums.sha256 (empty: intact)."""
    expected = dict(reversed(line.split("  ", 1)) for line in (folder / CHECKSUMS).read_text().splitlines() if line)
    actual = dict(reversed(line.split("  ", 1)) for line in checksums(folder).splitlines() if line)
    return sorted(name for name in set(expected) | set(actual) if expected.get(name) != actual.get(name))


def write_release_folder(run: RunDir, fill: Callable[[Path], None]) -> Path:
    """``fill(tmp)`` writes the release into a fresh folder beside the run; checksums are
    added and the folder replaces DIR/release in one rename (the old one is removed after)."""
    tmp = run.root / f".release.{os.getpid()}.tmp"
    old = run.root / f".release.{os.getpid()}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        (tmp / CHECKSUMS).write_text(checksums(tmp), encoding="utf-8")
        if run.release.exists():
            run.release.rename(old)
        tmp.rename(run.release)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return run.release


def write_release_files(folder: Path, *, model: Recommender, data: Interactions, counts: np.ndarray | None, counts_source: str,
                        config: dict[str, Any], audit: dict[str, Any], verdict: dict[str, Any],
                        card: dict[str, Any], card_markdown: str, plots: list[Path]) -> None:
    """Every file of the release into ``folder`` (see the module docstring)."""
    serving_model(model).save(folder / "model.pt")
    item_index(data).to_parquet(folder / "items.parquet", index=False)
    write_json(folder / "popularity.json", popularity_fallback(model, data, counts, counts_source))
    write_json(folder / "config.json", config)
    write_json(folder / "audit.json", audit)
    write_json(folder / "verdict.json", verdict)
    write_json(folder / "model_card.json", card)
    (folder / "model_card.md").write_text(card_markdown, encoding="utf-8")
    for plot in plots:
        shutil.copy(plot, folder / plot.name)


__all__ = ["CHECKSUMS", "checksums", "item_index", "popularity_fallback", "serving_model",
           "verify_checksums", "write_release_files", "write_release_folder"]
