"""The Python API: the same runs as the CLI, as functions (a real training run, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

import fedrec
from fedrec.errors import ConfigError


def test_train_returns_the_run_and_its_model_recommends(chain_file, tmp_path):
    run = fedrec.train(tmp_path / "run", model="itemknn", data=str(chain_file), neighbors=10)

    assert run.path == tmp_path / "run"
    assert run.document["model"] == "itemknn"
    assert run.metrics["hr@10"] > 0.5  # chains: the next item follows from the last
    top = run.load_model().recommend(np.array([0]), [np.array([3, 4, 5])], k=3)
    assert top.shape == (1, 3) and 6 in top[0]
    report = run.privacy_report()
    assert report["clients"] == [] and (run.path / "privacy" / "report.md").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"out": "x", "epochs": 3}, "epochs is not used by simulate"),
        ({"out": "x", "run_dir": "y"}, "out= argument"),
        ({"resume": "x", "model": "mf"}, "drop model"),
        ({}, "needs a run directory"),
        ({"out": "x", "rounds": "many"}, "rounds"),
    ],
)
def test_simulate_refuses_bad_arguments_before_any_process_starts(arguments, message):
    with pytest.raises(ConfigError, match=message):
        fedrec.simulate(**arguments)


def test_an_unknown_option_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        fedrec.train(tmp_path / "run", epoch=3)


def test_opening_a_directory_without_a_run_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no metrics.json"):
        fedrec.Run.open(tmp_path)
    with pytest.raises(ConfigError, match="no run directory"):
        fedrec.privacy_report(tmp_path / "missing")
