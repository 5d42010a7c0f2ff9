"""The release gate's defaults on the embedded Beauty data (slow: real training, 22k users):
a normally trained LSTM is released, the popularity recommender is blocked on popularity
bias. Run with ``python -m pytest -m slow tests/release/test_beauty_gate.py``."""

from __future__ import annotations

import json

import pytest

from fedrec.cli import main
from fedrec.release.bundle import verify_checksums
from fedrec.rundir import RunDir

pytestmark = pytest.mark.slow


def test_a_trained_lstm_on_beauty_passes_with_the_defaults_and_is_released(tmp_path):
    out = tmp_path / "lstm"

    status = main(["-q", "train", "--model", "lstm", "--epochs", "3", "--out", str(out)])

    gate = json.loads(RunDir(out).metrics.read_text())["release_gate"]
    assert status == 0, [c["message"] for c in gate["checks"] if not c["passed"]]
    assert gate["verdict"] == "passed" and verify_checksums(RunDir(out).release) == []


def test_pop_on_beauty_is_blocked_on_popularity_bias_with_exit_status_3(tmp_path):
    out = tmp_path / "pop"

    status = main(["-q", "train", "--model", "pop", "--out", str(out)])

    gate = json.loads(RunDir(out).metrics.read_text())["release_gate"]
    failed = {c["check"] for c in gate["checks"] if not c["passed"]}
    assert status == 3 and {"arp_ratio", "coverage@10"} <= failed
    assert not RunDir(out).release.exists()
