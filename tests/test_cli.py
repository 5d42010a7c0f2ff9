"""`fedrec train` end to end, started the way users start it: the console script."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

METRIC_KEYS = {"hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr"}
SMALL = ["--epochs", "3", "--dim", "8", "--batch-size", "32", "--threads", "1"]


def fedrec(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("model", ["pop", "itemknn", "mf", "lstm"])
def test_train_writes_the_documented_metrics_file(model, chain_file, tmp_path):
    out = tmp_path / "run"
    result = fedrec("train", "--model", model, "--data", str(chain_file), *SMALL, "--no-release-gate", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "metrics.json").read_text())
    assert document["model"] == model
    assert document["data"] == str(chain_file)
    assert document["protocol"] == "full-ranking-leave-one-out"
    assert set(document["metrics"]) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for v in document["metrics"].values())
    assert isinstance(document["wall_seconds"], float) and math.isfinite(document["wall_seconds"])
    assert document["config"]["model"] == model and document["config"]["dim"] == 8
    assert (out / "model.pt").exists()
    # Every run has a privacy report; this one says it carries no DP guarantee.
    assert json.loads((out / "privacy" / "report.json").read_text())["mechanism"] == "none"


@pytest.mark.parametrize("model", ["mf", "lstm"])
def test_train_with_dp_reports_the_epsilon_it_spent(model, chain_file, tmp_path):
    out = tmp_path / "run"
    result = fedrec("train", "--model", model, "--data", str(chain_file), *SMALL, "--epochs", "2",
                    "--dp", "--target-epsilon", "3", "--no-release-gate", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "privacy" / "report.json").read_text())
    assert 2.5 < report["epsilon_max"] <= 3.0
    assert document["privacy"]["epsilon"] == pytest.approx(report["epsilon_max"])
    assert [epoch["epoch"] for epoch in document["training"]["history"]] == [1, 2]
    assert (out / "privacy" / "epsilon_by_round.png").exists()


def test_train_runs_unchanged_on_a_csv_log(tmp_path):
    rows = [
        {"user_id": f"u{u}", "item_id": f"sku-{(u + t) % 15}", "timestamp": 1_700_000_000 + 60 * t, "store_id": u % 2}
        for u in range(40)
        for t in range(6)
    ]
    path = tmp_path / "log.csv"
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_csv(path, index=False)  # unsorted on purpose
    result = fedrec("train", "--model", "lstm", "--data", str(path), *SMALL, "--no-release-gate", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert document["data_stats"]["users"] == 40
    assert document["data_stats"]["items"] == 15


def test_bad_data_fails_with_a_message_and_no_traceback(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\n1,2\n", encoding="utf-8")
    result = fedrec("train", "--model", "pop", "--data", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "timestamp" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_bad_flag_value_is_rejected_with_the_allowed_choices(tmp_path):
    result = fedrec("train", "--model", "gru", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "lstm" in result.stderr


def test_simulate_refuses_centralised_only_flags_instead_of_ignoring_them(tmp_path):
    result = fedrec("simulate", "--model", "lstm", "--epochs", "3", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "epochs is not used by simulate" in result.stderr and "local_epochs" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, message", [
    (["--drift-correction", "mime", "--optimizer", "sgd"], "mime takes Adam steps"),
    (["--vocab-size", "10"], "picks items by the DP popularity prior"),
    (["--attribute-buckets", "16"], "needs item attributes"),
    (["--dp", "--target-epsilon", "1", "--prior-noise", "1"], "popularity prior alone"),
])
def test_simulate_refuses_settings_that_cannot_combine_before_ray_starts(flags, message, chain_file, tmp_path):
    result = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), *flags, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "simulating" not in result.stderr  # logged just before the simulation engine starts
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_quiet_prints_the_summary_line_and_warnings_but_no_progress(chain_file, tmp_path):
    result = fedrec("--quiet", "train", "--model", "mf", "--data", str(chain_file), *SMALL,
                    "--dp", "--noise-multiplier", "1.0", "--no-release-gate", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "HR@10" in result.stdout
    assert " INFO " not in result.stderr and "epoch" not in result.stderr
    assert "Secure RNG" not in result.stderr  # the noise is secret: Opacus' advice does not apply
