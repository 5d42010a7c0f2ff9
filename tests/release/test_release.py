"""The release gate end to end on a small anonymized shop log: a model that passes gets a
release holding what serving needs and nothing private; a blocked one gets none and exit
status 3; an override releases it with its reason; a baseline adds change bounds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import fedrec
from fedrec.cli import main
from fedrec.data import load_dataset
from fedrec.errors import ConfigError
from fedrec.models.registry import load_model
from fedrec.release.bundle import CHECKSUMS, verify_checksums
from fedrec.rundir import RunDir
from tests.conftest import anonymized_shop_log

MTK_SECTIONS = {"model_details", "model_parameters", "quantitative_analysis", "considerations"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return anonymized_shop_log(tmp_path_factory.mktemp("shop"), stores=4, users=2000, seed=2)


@pytest.fixture(scope="module")
def mf_run(shop, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mf"
    fedrec.train(out, model="mf", data=str(shop), epochs=1, threads=1, release_gate=False)
    return out


def oracle_copy(source: Path, out: Path, shop: Path, *, victims: str | None = None) -> Path:
    """A copy of the mf run whose model ranks every user's test item first (last for the
    customers of store ``victims``): a model that must pass, or fail on one group."""
    data = load_dataset(str(shop))
    model = load_model(RunDir(source).model)
    targets = torch.as_tensor([s[-1] for s in data.sequences])
    sign = np.where(data.stores.astype(str) == victims, -1.0, 1.0) if victims else np.ones(data.n_users)
    with torch.no_grad():
        items = torch.randn_like(model.net.item_embedding.weight)
        model.net.item_embedding.weight.copy_(items)
        model.net.item_bias.weight.zero_()
        model.net.user_embedding.weight.copy_(10.0 * torch.as_tensor(sign, dtype=torch.float32)[:, None] * items[targets])
    out.mkdir()
    shutil.copy(RunDir(source).metrics, RunDir(out).metrics)
    model.save(RunDir(out).model)
    return out


@pytest.fixture(scope="module")
def released(mf_run, shop, tmp_path_factory) -> Path:
    run = oracle_copy(mf_run, tmp_path_factory.mktemp("released") / "oracle", shop)
    assert main(["-q", "audit", str(run)]) == 0
    return run


def test_a_passing_model_is_released_with_what_serving_needs(released, shop):
    release = RunDir(released).release
    names = {p.name for p in release.iterdir()}

    assert {"model.pt", "items.parquet", "popularity.json", "config.json", "audit.json", "verdict.json",
            "model_card.json", "model_card.md", CHECKSUMS} <= names
    assert verify_checksums(release) == []
    data = load_dataset(str(shop))
    items = pd.read_parquet(release / "items.parquet")
    assert list(items["item"]) == list(range(1, data.n_items + 1))
    assert {"brand", "category"} <= set(items.columns)
    assert items["item_id"].iloc[0] == str(data.items.to_raw([1])[0])
    fallback = json.loads((release / "popularity.json").read_text())
    assert len(fallback["items"]) == 100 and fallback["scores"] == sorted(fallback["scores"], reverse=True)
    assert json.loads((release / "verdict.json").read_text())["verdict"] == "passed"
    assert json.loads(RunDir(released).metrics.read_text())["release_gate"]["release"] == str(release)


def test_the_release_holds_no_per_user_vector_and_no_client_state(released):
    release = RunDir(released).release
    payload = torch.load(release / "model.pt", weights_only=True)
    users = json.loads((release / "config.json").read_text())["data"]["users"]

    assert payload["n_users"] == 0
    assert all(users not in tuple(t.shape) for t in payload["state"].values()), {k: t.shape for k, t in payload["state"].items()}
    assert payload["state"]["user_embedding.weight"].numel() == 0
    assert not any(p.is_dir() for p in release.iterdir())
    assert load_model(release / "model.pt").n_items == payload["n_items"]


def test_the_model_card_has_the_toolkit_sections_metrics_with_intervals_and_the_privacy_statement(released):
    release = RunDir(released).release
    card = json.loads((release / "model_card.json").read_text())
    markdown = (release / "model_card.md").read_text()

    assert MTK_SECTIONS <= set(card)
    metrics = card["quantitative_analysis"]["performance_metrics"]
    overall = next(m for m in metrics if m["type"] == "HR@10" and m["slice"] == "all users")
    assert overall["confidence_interval"]["lower_bound"] <= overall["value"] <= overall["confidence_interval"]["upper_bound"]
    assert any(m["slice"].startswith("store=") and "confidence_interval" in m for m in metrics)
    assert any("threshold" in m for m in metrics)
    privacy = card["considerations"]["ethical_considerations"][0]["mitigation_strategy"]
    assert privacy and privacy in markdown
    assert card["release"]["code_version"]["fedrec"] == fedrec.__version__
    assert "anonymized" in card["model_parameters"]["data"][0]["description"] or "users" in card["model_parameters"]["data"][0]["description"]


def test_a_blocked_model_exits_3_and_removes_an_earlier_release(released, shop, mf_run, tmp_path, capsys):
    planted = oracle_copy(mf_run, tmp_path / "planted", shop, victims="S01")
    shutil.copytree(RunDir(released).release, RunDir(planted).release)  # as if an earlier model had been released

    status = main(["-q", "audit", str(planted)])

    err = capsys.readouterr().err
    audit = json.loads((RunDir(planted).audit / "audit.json").read_text())
    assert status == 3 and "release blocked" in err and "--override-reason" in err
    assert any(c["slice"] == "grouping store" and not c["passed"] for c in audit["checks"])
    assert not RunDir(planted).release.exists()


def test_an_override_releases_a_blocked_model_and_records_reason_user_and_time(shop, mf_run, tmp_path, capsys):
    planted = oracle_copy(mf_run, tmp_path / "planted", shop, victims="S02")
    assert main(["-q", "audit", str(planted)]) == 3
    assert main(["release", str(planted), "--override-reason", "   "]) == 2
    assert "override-reason is empty" in capsys.readouterr().err

    status = main(["-q", "release", str(planted), "--override-reason", "store S02 closes next week"])

    assert status == 0, capsys.readouterr().err
    release = RunDir(planted).release
    verdict = json.loads((release / "verdict.json").read_text())
    card = json.loads((release / "model_card.json").read_text())
    trail = [json.loads(line) for line in (RunDir(planted).audit / "overrides.jsonl").read_text().splitlines()]
    assert verdict["verdict"] == "overridden" and verdict["audit_verdict"] == "blocked"
    override = card["release"]["override"]
    assert override["reason"] == "store S02 closes next week" and override["user"] and override["time"]
    assert any("grouping store" in failed for failed in override["failed_checks"])
    assert trail[-1] == override
    assert "Released over a blocked audit" in (release / "model_card.md").read_text()
    assert verify_checksums(release) == []


def test_an_override_refuses_an_audit_of_another_model(released, tmp_path, capsys):
    run = tmp_path / "changed"
    shutil.copytree(released, run)
    model = load_model(RunDir(run).model)
    model.save(RunDir(run).model)  # same weights, new file: the sha256 of the payload may still match
    with open(RunDir(run).model, "ab") as extra:
        extra.write(b"\0")

    assert main(["release", str(run), "--override-reason", "why not"]) == 2
    assert "audited another model" in capsys.readouterr().err


def test_a_baseline_release_adds_change_bounds(released, mf_run, capsys):
    status = main(["-q", "audit", str(mf_run), "--baseline", str(RunDir(released).release),
                   "--min-hr-gain", "-1", "--min-group-ratio", "none", "--max-arp-ratio", "none", "--min-coverage", "0"])

    audit = json.loads((RunDir(mf_run).audit / "audit.json").read_text())
    change = next(c for c in audit["checks"] if c["check"] == "hr@10_change")
    assert status == 3 and not change["passed"] and change["value"] < -0.5
    assert main(["-q", "audit", str(mf_run), "--baseline", str(mf_run)]) == 2
    assert "no audit.json" in capsys.readouterr().err


def test_train_runs_the_gate_and_pop_exits_3_without_a_release(shop, tmp_path, capsys):
    out = tmp_path / "pop"

    status = main(["-q", "train", "--model", "pop", "--data", str(shop), "--out", str(out)])

    document = json.loads(RunDir(out).metrics.read_text())
    assert status == 3 and document["release_gate"]["verdict"] == "blocked"
    assert {"coverage@10", "hr@10_gain_over_popularity"} <= {c["check"] for c in document["release_gate"]["checks"] if not c["passed"]}
    assert (RunDir(out).audit / "audit.json").exists() and not RunDir(out).release.exists()
    assert "release blocked" in capsys.readouterr().err


def test_userknn_is_audited_but_never_released(shop, tmp_path, capsys):
    """userknn holds every customer's history: its audit runs (and here passes, bounds
    loosened), no release folder appears, and neither an override nor a federation takes it."""
    run = tmp_path / "userknn"
    fedrec.train(run, model="userknn", data=str(shop), release_gate=False)

    status = main(["audit", str(run), "--min-hr-gain", "-1", "--min-group-ratio", "none", "--max-arp-ratio", "none",
                   "--min-coverage", "0"])
    out = capsys.readouterr().out

    assert status == 0 and "passed" in out and "not released: userknn keeps every customer's history" in out
    assert not RunDir(run).release.exists()
    assert json.loads(RunDir(run).metrics.read_text())["release_gate"]["release"] is None
    assert main(["release", str(run), "--override-reason", "a baseline"]) == 2
    assert "never released" in capsys.readouterr().err and not RunDir(run).release.exists()
    with pytest.raises(SystemExit) as refused:  # simulate offers only the federated models
        main(["simulate", "--model", "userknn", "--data", str(shop), "--out", str(tmp_path / "fed")])
    assert refused.value.code == 2 and "invalid choice: 'userknn' (choose from 'mf', 'lstm', 'mlp')" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="never federated or released"):  # the API says why
        fedrec.simulate(tmp_path / "fed", model="userknn", data=str(shop))
