"""`fedrec audit DIR` on real runs over a small anonymized shop log (~2,000 customers, 4
stores, age band, gender, skin type, brand and category): what passes, what is blocked, and why."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fedrec
from fedrec import api
from fedrec.anonymize.hierarchies import age_band_labels
from fedrec.audit.gate import failed_checks
from fedrec.cli import main
from fedrec.config import AuditConfig
from fedrec.data import EvalSet, load_dataset
from fedrec.evaluation import evaluation_pass
from fedrec.models.pop import Popularity
from fedrec.models.registry import load_model
from fedrec.release import audit_run, popularity_ranks
from fedrec.release.fixed_vocabularies import PROFILE_VALUES, fixed_vocabularies
from fedrec.rundir import RunDir
from tests.conftest import anonymized_shop_log

POPULARITY_CHECKS = ("arp_ratio", "coverage@10")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """An anonymized synthetic log, as a store's data team would hand it over."""
    return anonymized_shop_log(tmp_path_factory.mktemp("shop"), stores=4, users=2000, seed=1)


@pytest.fixture(scope="module")
def runs(shop, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    fedrec.train(folder / "mf", model="mf", data=str(shop), epochs=2, threads=1, release_gate=False)
    fedrec.train(folder / "pop", model="pop", data=str(shop), release_gate=False)
    return {"mf": folder / "mf", "pop": folder / "pop"}


def planted_gap_run(source: Path, out: Path, shop: Path) -> str:
    """A copy of the mf run whose model puts every user's test item first, except for one
    store's users, whose test item it puts last. Returns that store."""
    data = load_dataset(str(shop))
    model = load_model(RunDir(source).model)
    victims = str(sorted(set(map(str, data.stores)))[0])
    targets = torch.as_tensor([s[-1] for s in data.sequences])
    sign = torch.as_tensor(np.where(data.stores.astype(str) == victims, -1.0, 1.0), dtype=torch.float32)
    with torch.no_grad():
        items = torch.randn_like(model.net.item_embedding.weight)
        model.net.item_embedding.weight.copy_(items)
        model.net.item_bias.weight.zero_()
        model.net.user_embedding.weight.copy_(10.0 * sign[:, None] * items[targets])
    out.mkdir()
    shutil.copy(RunDir(source).metrics, RunDir(out).metrics)
    model.save(RunDir(out).model)
    return victims


def test_a_trained_mf_passes_the_popularity_checks_and_every_grouping_is_audited(runs):
    model_before = digest(RunDir(runs["mf"]).model)

    document = api.audit(runs["mf"])

    checks = {c["check"]: c for c in document["checks"]}
    assert all(checks[name]["passed"] for name in POPULARITY_CHECKS), checks
    assert {"activity", "store", "age_band", "gender", "skin_type"} <= set(document["groups"])
    assert set(document["providers"]) == {"brand", "category"}
    assert document["popularity"]["popularity_source"] == "training-interactions"
    on_disk = json.loads((RunDir(runs["mf"]).audit / "audit.json").read_text())
    assert on_disk["verdict"] == document["verdict"]
    assert (RunDir(runs["mf"]).audit / "audit.md").read_text().startswith("# Release audit: ")
    assert digest(RunDir(runs["mf"]).model) == model_before


def test_pop_is_blocked_on_popularity_bias_with_exit_status_3(runs, capsys):
    status = main(["-q", "audit", str(runs["pop"])])

    out, err = capsys.readouterr()
    document = json.loads((RunDir(runs["pop"]).audit / "audit.json").read_text())
    assert status == 3
    assert document["verdict"] == "blocked" and "blocked" in out
    failed = {c["check"] for c in failed_checks(document)}
    assert set(POPULARITY_CHECKS) <= failed
    assert "release blocked" in err and "arp_ratio" not in out


def test_a_store_whose_targets_rank_last_is_blocked_on_group_utility(runs, shop, tmp_path):
    victims = planted_gap_run(runs["mf"], tmp_path / "planted", shop)

    document = audit_run(tmp_path / "planted", AuditConfig())

    [store] = [c for c in failed_checks(document) if c["slice"] == "grouping store"]
    assert store["check"] == "hr@10_group_ratio" and store["worst"] == victims
    assert document["groups"]["store"]["groups"][victims]["hr@10"] == 0.0
    assert document["verdict"] == "blocked"


def test_thresholds_given_as_flags_are_the_ones_applied(runs, capsys):
    status = main(["-q", "audit", str(runs["pop"]), "--max-arp-ratio", "none", "--min-coverage", "0",
                   "--min-hr-gain", "0", "--min-group-ratio", "none"])

    document = json.loads((RunDir(runs["pop"]).audit / "audit.json").read_text())
    assert status == 0, capsys.readouterr().err
    assert document["verdict"] == "passed" and document["config"]["max_arp_ratio"] is None


def test_a_dp_run_is_audited_with_an_advisory_note_and_its_model_untouched(shop, tmp_path):
    run = fedrec.train(tmp_path / "dp-pop", model="pop", data=str(shop), dp="local", target_epsilon=1.0)
    model_before = digest(RunDir(run.path).model)

    document = api.audit(run.path)

    assert document["dp"] and any("advisory" in note for note in document["notes"])
    assert digest(RunDir(run.path).model) == model_before


def test_popularity_ranks_equal_a_popularity_model_ranked_in_full(chain_split):
    data, split = chain_split
    model = Popularity(fedrec.config.TrainConfig(model="pop"), n_users=data.n_users, n_items=data.n_items)
    model.fit(split)

    full = evaluation_pass(model, split.test).ranks.numpy()
    closed = popularity_ranks(model.counts.numpy(), split.test.histories, split.test.targets)

    np.testing.assert_array_equal(closed, full)


def test_popularity_ranks_count_a_repeated_item_once_and_a_seen_target_last():
    counts = np.array([0, 5, 5, 3, 9, 1], dtype=np.float32)
    model = Popularity(fedrec.config.TrainConfig(model="pop"), n_users=3, n_items=5)
    model.fit_counts(torch.from_numpy(counts))
    histories = [np.array([4, 4, 1]), np.array([2, 3]), np.array([5, 5])]
    eval_set = EvalSet(np.arange(3), histories, np.array([2, 3, 5]))

    full = evaluation_pass(model, eval_set).ranks.numpy()
    closed = popularity_ranks(counts, histories, eval_set.targets)

    np.testing.assert_array_equal(closed, full)
    assert closed[2] == 6  # target already seen: masked, ranked last like fedrec.metrics does


def test_no_run_or_no_model_exits_2_naming_the_fix(runs, tmp_path, capsys):
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(RunDir(runs["pop"]).metrics, RunDir(half).metrics)

    assert main(["audit", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert main(["audit", str(half)]) == 2
    assert "no model.pt" in capsys.readouterr().err
    assert not RunDir(half).audit.exists()


def test_every_profile_value_fedrec_publishes_is_in_its_fixed_vocabulary(tmp_path):
    """A secure audit groups by labels fixed before the query: every value fedrec synth and the
    anonymizer can publish in a profile column must be one of them, or it would count as 'other'."""
    data = load_dataset(str(anonymized_shop_log(tmp_path, stores=3, users=400, seed=4)))
    fixed = fixed_vocabularies(["S01"])
    for column in PROFILE_VALUES:
        assert set(data.user_attributes[column].astype(str)) <= set(fixed[column]), column
    assert set(age_band_labels()) <= set(fixed["age_band"]) and "80+" in fixed["age_band"]
    assert fixed["store"] == tuple(sorted(("S01", "*", "unknown", "other")))
