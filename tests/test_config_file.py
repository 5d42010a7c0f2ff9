"""--config FILE.toml: the keys of [tool.flwr.app.config], under the command line's flags; and
where each value of a resolved run came from (metrics.json's config_sources)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedrec.config_file import SOURCES, config_sources, read_config_file, record_config_sources
from fedrec.errors import ConfigError
from fedrec.rundir import write_json

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "1", "--dim", "8", "--batch-size", "32", "--threads", "1", "--no-release-gate"]


def fedrec(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_knob_in_the_file_reaches_the_run_and_a_flag_beats_the_file(chain_file, tmp_path):
    config = write(tmp_path / "knobs.toml", 'weight-decay = 0.001\nseed = 7\noptimizer = "sgd"\n')
    out = tmp_path / "run"

    result = fedrec("train", "--model", "mf", "--data", str(chain_file), *SMALL, "--seed", "3",
                    "--config", str(config), "--out", str(out))

    assert result.returncode == 0, result.stderr
    document = json.loads((out / "metrics.json").read_text())
    assert (document["config"]["weight_decay"], document["config"]["optimizer"]) == (0.001, "sgd")
    assert document["config"]["seed"] == 3
    sources = document["config_sources"]
    assert set(sources) == set(document["config"]) and set(sources.values()) <= set(SOURCES)
    assert sources["weight_decay"] == sources["optimizer"] == "config-file"
    assert sources["seed"] == sources["model"] == sources["dim"] == "flag"
    assert sources["lr"] == "recipe"  # unset: the model's rate for SGD
    assert sources["patience"] == "default"


def test_the_table_of_a_pyproject_is_read_and_its_defaults_set_nothing(tmp_path):
    config = write(tmp_path / "pyproject.toml", '[project]\nname = "shop"\n\n[tool.flwr.app.config]\n'
                   'model = "lstm"\nrounds = "none"\nrun-dir = "runs/flwr"\nserver-momentum = 0.7\n')

    assert read_config_file(config, federated=True) == {"server_momentum": 0.7}


def test_the_repository_pyproject_holds_only_keys_the_config_file_knows():
    read_config_file(ROOT / "pyproject.toml", federated=True)


def test_an_unknown_key_is_refused_by_name_with_the_known_keys(tmp_path):
    config = write(tmp_path / "run.toml", "server-momentun = 0.9\n")

    with pytest.raises(ConfigError) as err:
        read_config_file(config, federated=True)

    assert "unknown key 'server-momentun'" in str(err.value) and str(config) in str(err.value)
    assert "server-momentum" in str(err.value) and "target-epsilon" in str(err.value)


def test_a_toml_syntax_error_names_the_file_and_how_keys_are_written(tmp_path):
    config = write(tmp_path / "run.toml", "model = lstm\n")

    result = fedrec("train", "--config", str(config), "--out", str(tmp_path / "run"))

    assert result.returncode == 2
    assert f"config file {config} is not valid TOML" in result.stderr and 'model = "lstm"' in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_a_value_of_the_wrong_type_names_the_file_and_the_key(tmp_path):
    config = write(tmp_path / "run.toml", 'rounds = "many"\n')

    with pytest.raises(ConfigError, match=r"run\.toml: rounds='many' is not a valid int"):
        read_config_file(config, federated=True)


def test_train_refuses_a_federation_setting_instead_of_ignoring_it(tmp_path):
    config = write(tmp_path / "run.toml", "num-clients = 5\n")

    with pytest.raises(ConfigError, match="num-clients = 5 is a federation setting"):
        read_config_file(config, federated=False)


def test_resume_in_the_file_points_to_the_flag(tmp_path):
    config = write(tmp_path / "run.toml", "resume = true\n")

    with pytest.raises(ConfigError, match="--resume DIR"):
        read_config_file(config, federated=True)


def test_simulate_checks_the_file_values_as_it_checks_flags_before_ray_starts(chain_file, tmp_path):
    config = write(tmp_path / "run.toml", "epochs = 3\n")

    result = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), "--config", str(config),
                    "--out", str(tmp_path / "run"))

    assert result.returncode == 2
    assert "epochs is not used by simulate" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_flag_wins_over_the_file_then_the_file_over_default_and_recipe():
    defaults = {"model": "lstm", "seed": 42, "lr": None, "patience": 5, "federation.rounds": None}
    resolved = {"model": "mf", "seed": 7, "lr": 10.0, "patience": 5, "federation.rounds": 40}

    sources = config_sources(["model", "seed"], ["seed", "patience"], defaults, resolved)

    assert sources == {"model": "flag", "seed": "flag", "lr": "recipe", "patience": "config-file",
                       "federation.rounds": "recipe"}


def test_a_federated_run_names_federation_fields_as_its_config_does(tmp_path):
    write_json(tmp_path / "metrics.json", {"config": {"model": "lstm", "seed": 42, "federation.rounds": 3,
                                                      "federation.strategy": "fedavgm", "federation.run_dir": "x"}})

    sources = record_config_sources(tmp_path, flags=["rounds", "run_dir"], file_keys=["strategy"], federated=True)

    assert sources == {"model": "default", "seed": "default", "federation.rounds": "flag",
                       "federation.strategy": "config-file", "federation.run_dir": "flag"}
    assert json.loads((tmp_path / "metrics.json").read_text())["config_sources"] == sources


def test_a_resumed_run_keeps_where_its_values_came_from(tmp_path):
    write_json(tmp_path / "metrics.json", {"config": {"model": "mf", "federation.rounds": 6, "federation.resume": True}})
    earlier = {"model": "flag", "federation.rounds": "recipe", "federation.resume": "default"}

    sources = record_config_sources(tmp_path, flags=["rounds", "resume"], file_keys=[], federated=True, earlier=earlier)

    assert sources == {"model": "flag", "federation.rounds": "flag", "federation.resume": "flag"}
