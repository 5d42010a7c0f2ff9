"""A long run keeps the checkpoints it can still need, not one per round (a 1,200-round device
run kept 26 GB of them): the last --keep-checkpoints rounds' and the reported round's."""

from __future__ import annotations

import json

import pytest
import torch

from fedrec.errors import ConfigError
from fedrec.federation.checkpoints import CHECKPOINT_DIR, Checkpoint, latest_checkpoint, prune_checkpoints, save_checkpoint


def _run_of(tmp_path, rounds: int):
    for round_number in range(1, rounds + 1):
        save_checkpoint(tmp_path, Checkpoint(round_number, {"w": torch.zeros(2)}, [{"round": r} for r in range(1, round_number + 1)], {}))
    return tmp_path


def _kept(run_dir) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / CHECKPOINT_DIR).glob("round-*.pt"))


def test_the_last_rounds_and_the_reported_one_are_kept(tmp_path):
    run_dir = _run_of(tmp_path, 30)
    deleted = prune_checkpoints(run_dir, keep_last=5, keep={12})
    assert _kept(run_dir) == [12, 26, 27, 28, 29, 30]
    assert sorted(deleted) == [r for r in range(1, 26) if r != 12]
    assert latest_checkpoint(run_dir).round == 30 and len(latest_checkpoint(run_dir).history) == 30  # metrics lose nothing


def test_zero_keeps_every_round(tmp_path):
    run_dir = _run_of(tmp_path, 12)
    assert prune_checkpoints(run_dir, keep_last=0, keep=set()) == []
    assert _kept(run_dir) == list(range(1, 13))


def test_a_negative_count_is_refused():
    from fedrec.config import FederationConfig

    with pytest.raises(ConfigError, match="keep_checkpoints"):
        FederationConfig(keep_checkpoints=-1)


def test_replaying_a_round_whose_checkpoint_was_pruned_says_how_to_keep_them(tmp_path):
    from fedrec.privacy_audit.replay import replay_round

    run_dir = _run_of(tmp_path, 20)
    prune_checkpoints(run_dir, keep_last=3, keep=set())
    with pytest.raises(ConfigError, match="--keep-checkpoints 0"):
        replay_round(run_dir, 10)


def test_a_run_prunes_as_it_goes_and_still_reports_and_resumes(chain_file, tmp_path):
    from test_simulation import fedrec

    out = tmp_path / "run"
    common = ["simulate", "--model", "lstm", "--data", str(chain_file), "--num-clients", "2", "--dim", "8", "--threads", "1",
              "--no-release-gate", "--keep-checkpoints", "2"]
    first = fedrec(*common, "--rounds", "4", "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]

    reported = json.loads((out / "metrics.json").read_text())["reported_round"]
    assert _kept(out) == sorted({reported, 3, 4})
    resumed = fedrec("simulate", "--rounds", "5", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    document = json.loads((out / "metrics.json").read_text())
    assert document["complete"] is True and [r["round"] for r in document["rounds"]] == [1, 2, 3, 4, 5]
    assert _kept(out) == sorted({document["reported_round"], 4, 5})
