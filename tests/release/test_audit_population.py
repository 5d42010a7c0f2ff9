"""`fedrec audit DIR` says whom its test HR@10 covers, measures what the release gate measured
(a run's --audit-holdout customers never trained, so they are not audited), and never
silently replaces the audit a release was judged on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fedrec
from fedrec import api
from fedrec.data import load_dataset
from fedrec.data.holdout import held_out
from fedrec.release.card import model_card, render_card
from fedrec.rundir import RunDir
from tests.conftest import anonymized_shop_log

HOLDOUT = 0.3


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return anonymized_shop_log(tmp_path_factory.mktemp("shop"), stores=3, users=600, seed=3)


@pytest.fixture(scope="module")
def pop_run(shop, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pop"
    fedrec.train(out, model="pop", data=str(shop), release_gate=False)
    return out


def with_holdout(source: Path, out: Path) -> Path:
    """A copy of a run whose config records that --audit-holdout kept customers out of training."""
    out.mkdir()
    metrics = json.loads(RunDir(source).metrics.read_text())
    metrics["config"]["federation.audit_holdout"] = HOLDOUT
    RunDir(out).metrics.write_text(json.dumps(metrics))
    RunDir(out).model.write_bytes(RunDir(source).model.read_bytes())
    return out


def test_an_audit_names_whom_its_test_hr_covers_as_metrics_json_does(pop_run):
    document = api.audit(pop_run)

    metrics = json.loads(RunDir(pop_run).metrics.read_text())
    assert document["utility"]["population"] == metrics["test_population"]["who"] == "test users, all of them"
    assert document["utility"]["users"] == metrics["test_population"]["users"]
    page = (RunDir(pop_run).audit / "audit.md").read_text()
    assert f"{document['utility']['users']:,} test users, all of them" in page


def test_the_audit_of_a_run_with_a_holdout_leaves_out_the_customers_who_never_trained(pop_run, shop, tmp_path):
    run = with_holdout(pop_run, tmp_path / "held")
    data = load_dataset(str(shop))
    trained = int((~held_out(data.users.raw, HOLDOUT, json.loads(RunDir(run).metrics.read_text())["config"]["seed"])).sum())
    assert 0 < trained < data.n_users

    document = api.audit(run)
    everyone = api.audit(pop_run)

    assert document["utility"]["users"] == trained and everyone["utility"]["users"] == data.n_users
    assert "the audit holdout excluded (--audit-holdout 0.3" in document["utility"]["population"]
    # the popularity is the training counts of those who trained: the baseline differs from everyone's
    assert document["popularity"]["arp_consumed"] != everyone["popularity"]["arp_consumed"]


def test_a_second_audit_keeps_the_first_with_its_page_and_pictures_and_says_so(pop_run, tmp_path, caplog):
    run = with_holdout(pop_run, tmp_path / "twice")
    first = api.audit(run)
    audit = RunDir(run).audit
    kept_page = (audit / "audit.md").read_text()
    pictures = sorted(p.name for p in audit.glob("*.png"))

    second = api.audit(run, min_coverage=0.5)

    earlier = audit / "earlier" / "1"
    assert json.loads((earlier / "audit.json").read_text())["checks"] == first["checks"]
    assert (earlier / "audit.md").read_text() == kept_page
    assert sorted(p.name for p in earlier.glob("*.png")) == pictures
    assert second["replaces"]["kept_in"] == "audit/earlier/1/audit.json"
    assert second["replaces"]["verdict"] == first["verdict"] and second["replaces"]["users"] == first["utility"]["users"]
    assert json.loads((audit / "audit.json").read_text())["replaces"] == second["replaces"]
    assert "replaces the earlier one" in (audit / "audit.md").read_text()
    assert any("this audit replaces" in record.getMessage() for record in caplog.records)
    assert first.get("replaces") is None

    third = api.audit(run)

    assert third["replaces"]["kept_in"] == "audit/earlier/2/audit.json"
    assert json.loads((audit / "earlier" / "2" / "audit.json").read_text())["config"]["min_coverage"] == 0.5
    assert not list((audit / "earlier").glob(".*"))  # no staging folder left
    assert np.isclose(third["utility"]["hr@10"], first["utility"]["hr@10"])


def card_of(run: dict, audit: dict) -> tuple[dict, str]:
    card = model_card(run=run, audit=audit, verdict={"verdict": audit["verdict"], "override": None},
                      data={"source": "shop", "description": "users"}, privacy="none", code_version={"fedrec": "0"},
                      plots=[], created="today")
    return card, render_card(card)


def test_the_card_says_once_whom_the_test_figures_cover(pop_run):
    audit = api.audit(pop_run)
    run = json.loads(RunDir(pop_run).metrics.read_text())

    card, markdown = card_of(run, audit)

    hr = next(m for m in card["quantitative_analysis"]["performance_metrics"] if m["type"] == "HR@10")
    assert hr["population"] == {"users": audit["utility"]["users"], "who": "test users, all of them",
                                "by": "the release audit, which the gate judged"}
    assert f'"All users" is the same {audit["utility"]["users"]:,} test users, all of them, for every overall' in markdown
    assert card["quantitative_analysis"]["notes"] == []


def test_the_card_explains_two_test_hr_figures_on_different_users(pop_run, tmp_path):
    """As a run from before the server left the holdout out: the gate's 0.0038 on 1,316 users
    beside metrics.json's 0.0054 on 1,476 must not read as one figure."""
    audit = api.audit(with_holdout(pop_run, tmp_path / "held"))
    run = json.loads(RunDir(pop_run).metrics.read_text())
    run["metrics"]["hr@10"] = audit["utility"]["hr@10"] + 0.0016

    card, markdown = card_of(run, audit)

    (note,) = card["quantitative_analysis"]["notes"]
    assert f"on {audit['utility']['users']:,} test users who trained: the audit holdout excluded" in note
    assert f"on {run['test_population']['users']:,} test users, all of them" in note
    assert "The gate judged the audit's figure" in note and note in markdown
