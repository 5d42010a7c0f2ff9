"""Small real data sets written to disk, shared by the tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fedrec.config import TrainConfig
from fedrec.data import leave_one_out, load_dataset

# The test-only privacy modes (tests/fixtures/wire_capture/test_modes.py), registered here as in
# the CLI subprocesses and Ray workers the tests start with that folder on PYTHONPATH.
sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "wire_capture"))
import test_modes  # noqa: E402

test_modes.register()


def write_chain_sequences(path: Path, *, n_users: int = 120, n_items: int = 30, seed: int = 0) -> Path:
    """Users walk item chains (i, i+1, i+2, ...): the next item is learnable from the last."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, n_users + 1):
        start = int(rng.integers(1, n_items + 1))
        length = int(rng.integers(5, 10))
        items = [((start - 1 + step) % n_items) + 1 for step in range(length)]
        lines.append(" ".join(map(str, [user, *items])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_random_sequences(path: Path, *, n_users: int, n_items: int, seed: int = 0) -> Path:
    """Users buy random items: nothing generalises, so whatever a model predicts well it memorised."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(map(str, [user, *rng.integers(1, n_items + 1, size=int(rng.integers(8, 12)))]))
             for user in range(1, n_users + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def anonymized_shop_log(folder: Path, *, stores: int, users: int, seed: int) -> Path:
    """A synthetic beauty-shop log made k-anonymous as a store would hand it over: stores,
    customer attributes (age band, gender, skin type, ...), brands and categories."""
    import fedrec

    raw, _ = fedrec.synth(folder / "raw.parquet", stores=stores, users=users, seed=seed)
    fedrec.anonymize_log(raw, folder / "anon.parquet", key=fedrec.make_key(folder / "store.key"))
    return folder / "anon.parquet"


@pytest.fixture
def chain_file(tmp_path: Path) -> Path:
    return write_chain_sequences(tmp_path / "chains.txt")


@pytest.fixture
def chain_split(chain_file: Path):
    data = load_dataset(str(chain_file))
    return data, leave_one_out(data)


# Small and quick; enough epochs for the chain pattern to be learnt.
FAST_CONFIG = TrainConfig(epochs=40, patience=40, dim=16, batch_size=32, lr=1e-2, dropout=0.0, threads=1, neighbors=10)


@pytest.fixture
def fast_config() -> TrainConfig:
    return FAST_CONFIG


def resolved(train: TrainConfig, federation, *, item_attributes: bool = False):
    """Both configs as a run resolves them (the recipe fills what the test leaves unset)."""
    from fedrec.federation.recipes import resolve_run

    return resolve_run(train, federation, item_attributes=item_attributes)
