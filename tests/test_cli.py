"""`fedrec train` end to end, started the way users start it (the console script), and the
command line itself: help, errors, the --dp flag."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fedrec.cli import build_parser
from fedrec.config import TrainConfig

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


def option_entries(help_text: str) -> list[str]:
    """The options a help text lists: its lines that start an option's entry."""
    return [line.split()[0] for line in help_text.splitlines() if re.match(r"^  -", line)]


def help_at_100_columns(*args: str) -> str:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", ["simulate", "train"])
def test_help_shows_at_most_20_options_in_at_most_60_lines(command):
    help_text = help_at_100_columns(command, "--help")

    assert len(help_text.splitlines()) <= 60
    assert 5 <= len(option_entries(help_text)) <= 20
    for decision in ("--model", "--data", "--dp", "--target-epsilon", "--noise-multiplier", "--out", "--config"):
        assert f"  {decision}" in help_text
    assert "privacy:" in help_text and "output:" in help_text


def test_simulate_help_groups_the_federation_and_privacy_decisions():
    help_text = help_at_100_columns("simulate", "--help")
    federation = help_text.split("federation:")[1].split("privacy:")[0]
    privacy = help_text.split("privacy:")[1].split("output:")[0]

    assert option_entries(federation) == ["--partition", "--num-clients", "--rounds"]
    assert {"--dp", "--secagg,", "--lifetime-epsilon"} <= set(option_entries(privacy))


@pytest.mark.parametrize("command, knob", [("simulate", "--server-momentum"), ("simulate", "--secagg-clip"),
                                           ("train", "--weight-decay")])
def test_help_all_lists_the_knobs_that_help_leaves_out(command, knob):
    brief, full = help_at_100_columns(command, "--help"), help_at_100_columns(command, "--help-all")

    assert knob not in brief
    assert f"  {knob}" in full
    assert len(option_entries(full)) > 2 * len(option_entries(brief))


def test_every_knob_is_still_accepted_as_a_flag():
    args = build_parser().parse_args(["simulate", "--server-momentum", "0.5", "--no-touched-rows", "--lr", "0.1",
                                      "--k-anonymity", "7", "--out", "x"])

    assert (args.server_momentum, args.touched_rows, args.lr, args.k_anonymity) == ("0.5", False, "0.1", 7)


def test_an_option_error_is_one_message_with_a_pointer_to_help_and_no_usage_block(tmp_path):
    result = fedrec("simulate", "--model", "gru", "--out", str(tmp_path / "run"))

    assert result.returncode == 2
    assert result.stderr.startswith("fedrec simulate: error: argument --model: invalid choice: 'gru'")
    assert "usage:" not in result.stderr
    assert "fedrec simulate --help" in result.stderr and len(result.stderr.splitlines()) == 2


def test_a_missing_command_is_an_error_without_usage():
    result = fedrec()

    assert result.returncode == 2
    assert result.stderr.startswith("fedrec: error:") and "usage:" not in result.stderr


@pytest.mark.parametrize("command", ["train", "simulate"])
@pytest.mark.parametrize("flags, mode", [([], None), (["--dp"], "local"), (["--dp", "local"], "local"),
                                         (["--no-dp"], "off"), (["--dp", "off"], "off")])
def test_dp_takes_a_mode_name_on_train_and_simulate(command, flags, mode):
    args = build_parser().parse_args([command, *flags, "--out", "x"])

    assert args.dp == mode


def test_central_dp_stays_an_alias_of_dp_central_on_simulate():
    assert build_parser().parse_args(["simulate", "--central-dp", "--out", "x"]).dp == "central"


@pytest.mark.parametrize("mode, old_value", [("local", True), ("off", False)])
def test_a_config_written_when_dp_was_a_bool_reads_as_its_mode(mode, old_value):
    assert TrainConfig(dp=mode, noise_multiplier=1.0) == TrainConfig(dp=old_value, noise_multiplier=1.0)
