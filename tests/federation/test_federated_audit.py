"""The federated audit: clients send only sums over their own test users, and the server's
audit of a simulated federation equals the server-side one (`fedrec audit DIR`)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec import api
from fedrec.audit.exposure import exposure_sums
from fedrec.audit.gate import failed_checks, gate
from fedrec.audit.group_utility import finish_group_utility, group_utility_sums, utility_sums
from fedrec.audit.groupings import LENGTH_BINS, activity_threshold, length_histogram, vocabulary
from fedrec.audit.reply import add_by_label_union, pack
from fedrec.config import AuditConfig, TrainConfig
from fedrec.data import load_dataset
from fedrec.errors import DataError
from fedrec.federation.audit_round import (
    DP_PRIOR, NO_PRIOR, audit_popularity, grouping_order, summed_lengths, threshold_of,
)
from fedrec.privacy.popularity_prior import released_prior_path
from fedrec.release.audit_run import MODEL, finish_audits
from fedrec.rundir import RunDir, write_torch
from tests.conftest import anonymized_shop_log

TOLERANCE = 1e-9
# SecAgg+ rounds each store's float entries (exposure) stochastically to a grid of 2 x clip / 2^22,
# the clip about twice the largest store's users: absolute, or relative for ratios of such sums.
SECURE_SUM_TOLERANCE = 1e-4
SMALL = ["--dim", "8", "--batch-size", "16", "--lr", "0.01", "--threads", "1"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)


class Population:
    """What one evaluation pass hands the audits, for ``n`` made-up customers."""

    def __init__(self, n: int, *, n_items: int = 40, k: int = 10, seed: int = 0, keys=None, ranks=None, top=None,
                 histories=None, stores=None) -> None:
        rng = np.random.default_rng(seed)
        self.n_items = n_items
        self.keys = np.array([f"cust-{seed}-{u}" for u in range(n)]) if keys is None else keys
        self.ranks = rng.geometric(0.1, n) - 1 if ranks is None else ranks
        self.top_items = np.stack([rng.choice(np.arange(1, n_items + 1), k, replace=False) for _ in range(n)]) if top is None else top
        self.histories = [rng.integers(1, n_items + 1, int(rng.integers(1, 12))) for _ in range(n)] if histories is None else histories
        self.stores = rng.choice(["north", "south", "west"], n) if stores is None else stores

    def rows(self, chosen: np.ndarray) -> "Population":
        return Population(len(chosen), n_items=self.n_items, keys=self.keys[chosen], ranks=self.ranks[chosen],
                          top=self.top_items[chosen], histories=[self.histories[i] for i in chosen],
                          stores=self.stores[chosen])



def client_reply(pop, rows, stores):
    """One client's sums: its own stores' vocabulary (it cannot know the others')."""
    part = pop.rows(rows)
    labels = vocabulary(stores[rows])
    return pack(
        group_utility_sums(part.ranks, stores[rows], part.keys, labels=labels, name="store", n_boot=30, seed=4),
        exposure_sums(part.top_items, part.histories, n_items=part.n_items),
    )


def test_replies_with_different_label_sets_add_up_to_the_central_sums():
    pop = Population(300, seed=2)
    stores = np.array([f"S{u % 5}" for u in range(300)])  # client c holds stores S{c}, S{c+2}: overlapping sets
    rows = [np.flatnonzero(np.isin(stores, [f"S{c}", f"S{(c + 2) % 5}"]) & (np.arange(300) % 2 == c % 2))
            for c in range(2)]
    rows.append(np.setdiff1d(np.arange(300), np.concatenate(rows)))

    total, partial = add_by_label_union([client_reply(pop, r, stores) for r in rows])

    central = group_utility_sums(pop.ranks, stores, pop.keys, labels=vocabulary(stores), name="store", n_boot=30, seed=4)
    summed = total["group-utility/store"]
    assert partial == [] and summed.labels == central.labels == ("S0", "S1", "S2", "S3", "S4")
    np.testing.assert_array_equal(summed.rank_counts, central.rank_counts)
    np.testing.assert_array_equal(summed.boot_rank_counts, central.boot_rank_counts)
    assert finish_group_utility(summed, min_group_size=50) == finish_group_utility(central, min_group_size=50)


def test_a_grouping_not_every_client_sent_is_named_not_summed():
    pop = Population(60, seed=3)
    stores = np.array(["north"] * 30 + ["south"] * 30)
    with_stores = client_reply(pop, np.arange(30), stores)
    without = pack(exposure_sums(pop.rows(np.arange(30, 60)).top_items, pop.rows(np.arange(30, 60)).histories,
                                 n_items=pop.n_items))

    total, partial = add_by_label_union([with_stores, without])

    assert partial == ["group-utility/store"] and set(total) == {"exposure"}
    assert int(total["exposure"].users) == 60


def test_relabelling_never_drops_a_label_it_holds():
    pop = Population(20, seed=1)
    sums = group_utility_sums(pop.ranks, pop.stores, pop.keys, labels=vocabulary(pop.stores), name="store", n_boot=3)

    with pytest.raises(DataError, match="cannot be relabelled"):
        sums.with_labels(("north",))


def test_the_threshold_of_summed_length_counts_is_the_central_one():
    rng = np.random.default_rng(0)
    clients = [rng.integers(0, n, size) for n, size in ((5, 40), (30, 25), (12, 60))]  # different longest histories
    clients.append(np.full(7, 9))  # ties at the threshold

    summed = summed_lengths([np.bincount(lengths) for lengths in clients])

    everyone = np.concatenate(clients)
    assert threshold_of(summed) == activity_threshold(everyone)
    assert threshold_of(summed_lengths([np.bincount(everyone[:1])])) == activity_threshold(everyone[:1])


def test_a_capped_length_histogram_keeps_the_threshold_below_its_cap():
    """Under --secagg each store sends LENGTH_BINS counts (the last bin: that length or more), so
    SecAgg+ can sum them; the threshold is the uncapped one while it lies below the cap."""
    lengths = np.concatenate([np.arange(1, 41), [400, 900]])  # two histories past the cap
    capped = length_histogram(lengths, bins=LENGTH_BINS)
    assert len(capped) == LENGTH_BINS and capped[-1] == 2 and capped.sum() == len(lengths)
    assert threshold_of(capped) == threshold_of(length_histogram(lengths)) == activity_threshold(lengths) == 34
    few = np.array([1, 2, 400, 900])  # the threshold itself past the cap: read as the cap (255 or more)
    assert threshold_of(length_histogram(few, bins=LENGTH_BINS)) == LENGTH_BINS - 1


def test_groupings_keep_the_order_the_clients_report():
    assert grouping_order([["activity", "store", "gender"], ["activity", "age_band"]]) == [
        "activity", "store", "gender", "age_band"]


def test_under_dp_popularity_is_the_released_prior_or_nothing(tmp_path):
    dp = TrainConfig(model="lstm", dp="local", noise_multiplier=1.0)

    assert audit_popularity(dp, tmp_path, []) == (None, NO_PRIOR)
    write_torch(released_prior_path(tmp_path), torch.tensor([0.0, 3.5, -1.0, 7.0], dtype=torch.float64))
    counts, source = audit_popularity(dp, tmp_path, [])
    assert source == DP_PRIOR and counts.tolist() == [0.0, 3.5, -1.0, 7.0]
    exact, source = audit_popularity(TrainConfig(model="lstm"), tmp_path, [np.array([0, 1, 2]), np.array([0, 4, 0])])
    assert exact.tolist() == [0, 5, 2] and source == "training-interactions"


def test_without_any_popularity_the_gate_calls_it_unmeasured(chain_split):
    data, split = chain_split
    pop = Population(40, n_items=data.n_items, seed=5)
    sums = [utility_sums(pop.ranks, name=MODEL), exposure_sums(pop.top_items, pop.histories, n_items=data.n_items)]

    audits = finish_audits({s.key: s for s in sums}, data, popularity=None, popularity_source="none",
                           config=AuditConfig(), why_no_popularity=NO_PRIOR)

    verdict = gate(audits, AuditConfig())
    failed = {c["check"] for c in failed_checks(verdict)}
    assert verdict["verdict"] == "blocked" and {"hr@10_gain_over_popularity", "arp_ratio"} <= failed
    assert audits["popularity"]["arp_ratio"] is None and audits["popularity"]["coverage@10"] is not None
    assert audits["providers"] == {} and {s["reason"] for s in audits["skipped_audits"]} == {NO_PRIOR}


# --- end to end: a simulated federation on an anonymized shop log --------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A small anonymized shop log: 3 stores (one client each), customer attributes, brands."""
    return anonymized_shop_log(tmp_path_factory.mktemp("shop"), stores=3, users=500, seed=1)


def close(federated, central, where="", tolerance=TOLERANCE, relative=0.0):
    """Equal, floats to ``tolerance`` (or ``relative`` of their size), recursively; returns the
    first difference's path or None."""
    if isinstance(central, dict):
        if not isinstance(federated, dict) or set(federated) != set(central):
            return where
        return next((d for k in central if (d := close(federated[k], central[k], f"{where}/{k}", tolerance, relative)) is not None), None)
    if isinstance(central, list):
        if not isinstance(federated, list) or len(federated) != len(central):
            return where
        return next((d for i, (f, c) in enumerate(zip(federated, central))
                     if (d := close(f, c, f"{where}/{i}", tolerance, relative)) is not None), None)
    if isinstance(central, float) and isinstance(federated, float):
        return None if math.isclose(federated, central, rel_tol=relative, abs_tol=tolerance) else f"{where}: {federated} != {central}"
    return None if federated == central else where


@pytest.mark.parametrize("secure", [False, True], ids=["clear", "secagg"])
def test_the_federated_audit_of_a_simulation_equals_the_server_side_audit(secure, shop, tmp_path):
    """Under --secagg every audit sum reaches the server only as SecAgg+'s sum, on labels fixed
    before the query: the audit equals the central one within the sum's rounding
    (SECURE_SUM_TOLERANCE) on every grouping but those whose labels cannot be fixed (the
    synthetic log's city and postcode prefix), which it names as skipped."""
    run = tmp_path / "run"
    result = run_cli("simulate", "--model", "lstm", "--data", str(shop), "--rounds", "1", "--local-epochs", "1",
                     *SMALL, *(["--secagg"] if secure else []), "--out", str(run))
    federated = json.loads((RunDir(run).audit / "audit.json").read_text())  # api.audit overwrites it
    metrics = json.loads(RunDir(run).metrics.read_text())
    assert result.returncode == {"passed": 0, "blocked": 3}[federated["verdict"]], result.stderr[-3000:]

    central = api.audit(run)

    assert metrics["release_gate"]["verdict"] == federated["verdict"]
    assert metrics["release_gate"]["audit"] == str(RunDir(run).audit / "audit.json")
    assert RunDir(run).release.exists() == (federated["verdict"] == "passed")
    assert f"release gate on round 1: {federated['verdict']}" in result.stderr
    assert federated["federated"] and federated["clients"] == {"asked": 3, "counted": 3, "answered": 3}
    assert "from 3 of 3 clients" in federated["protocol"]
    # The label union and the global suppression are exercised: each store is on one client
    # only, and some attribute groups are below the minimum size on the global count.
    stores = federated["groups"]["store"]
    assert {*stores["groups"], *stores["suppressed"]} == set(map(str, load_dataset(str(shop)).stores))
    assert any(audit["suppressed"] for audit in federated["groups"].values())
    tolerance, relative = (SECURE_SUM_TOLERANCE, SECURE_SUM_TOLERANCE) if secure else (TOLERANCE, 0.0)
    if secure:
        left_out = [name for name in central["groups"] if name not in federated["groups"]]
        assert sorted(left_out) == ["city", "postcode_prefix"], left_out
        named = [entry for entry in federated["skipped_audits"] if entry["audit"].startswith("group-utility/")]
        assert sorted(entry["audit"] for entry in named) == ["group-utility/city", "group-utility/postcode_prefix"]
        assert all("fixed" in entry["reason"] for entry in named)
        federated["skipped_audits"] = [entry for entry in federated["skipped_audits"] if entry not in named]
        central["groups"] = {name: audit for name, audit in central["groups"].items() if name not in left_out}
        for block in ("checks", "skipped"):  # the gate's checks of the groupings left out
            central[block] = [c for c in central[block] if c.get("slice") not in [f"grouping {n}" for n in left_out]]
    for block in ("utility", "popularity", "groups", "providers", "skipped_audits", "verdict", "checks", "skipped"):
        difference = close(federated[block], central[block], block, tolerance, relative)
        assert difference is None, difference
    assert list(federated["groups"]) == list(central["groups"])


def test_with_an_audit_holdout_the_run_has_one_test_hr_on_one_population(shop, tmp_path):
    """--audit-holdout keeps customers out of training; the stores audit only those who trained,
    and so do the server's evaluation (metrics.json, the final line) and `fedrec audit DIR`:
    one test HR@10 per run, on users every file names alike. The gate's audit is kept when
    `fedrec audit` replaces it."""
    run = tmp_path / "run"
    result = run_cli("simulate", "--model", "lstm", "--data", str(shop), "--rounds", "1", "--local-epochs", "1",
                     *SMALL, "--audit-holdout", "0.2", "--out", str(run))
    gated = json.loads((RunDir(run).audit / "audit.json").read_text())
    metrics = json.loads(RunDir(run).metrics.read_text())
    assert result.returncode in (0, 3), result.stderr[-3000:]

    central = api.audit(run)

    everyone = len(load_dataset(str(shop)).users.raw)
    assert gated["utility"]["users"] == metrics["test_population"]["users"] < everyone
    assert math.isclose(gated["utility"]["hr@10"], metrics["metrics"]["hr@10"], abs_tol=TOLERANCE)
    assert gated["utility"]["population"] == metrics["test_population"]["who"] == central["utility"]["population"]
    assert "the audit holdout excluded (--audit-holdout 0.2" in gated["utility"]["population"]
    assert close(central["utility"], gated["utility"], "utility") is None
    assert close(central["groups"], gated["groups"], "groups") is None
    assert central["replaces"]["kept_in"] == "audit/earlier/1/audit.json"
    assert json.loads((RunDir(run).audit / "earlier" / "1" / "audit.json").read_text())["checks"] == gated["checks"]
