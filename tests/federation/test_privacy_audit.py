"""`fedrec privacy-audit` on real simulated runs over random purchase data (which a model can
only memorise): the curious server finds a store's items in its update and not in the SecAgg+
sum, the audit changes nothing the run wrote, an honest DP run passes, and a planted bug (DP-SGD
without noise while the ledger claims epsilon 8) fails it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import write_random_sequences
from tests.federation.test_simulation import SMALL, fedrec

INCONSISTENT = 4  # fedrec.cli.INCONSISTENT_AUDIT
NOISE_OFF = Path(__file__).resolve().parents[1] / "fixtures" / "noise_off"  # the planted bug, a sitecustomize
# Two stores of 600 customers, half of them held out; 4 rounds of 8 local DP epochs at epsilon 1.
DP_RUN = ["--model", "lstm", "--partition", "store", "--num-clients", "2", "--rounds", "4", "--local-epochs", "8",
          "--dp", "--target-epsilon", "1", "--prior-noise", "0", "--vocab-size", "0", "--dim", "32", "--threads", "1",
          "--no-release-gate", "--audit-holdout", "0.5"]


@pytest.fixture(scope="module")
def random_purchases(tmp_path_factory) -> Path:
    return write_random_sequences(tmp_path_factory.mktemp("data") / "random.txt", n_users=1200, n_items=1000, seed=1)


def _attacks(run: Path) -> dict:
    return json.loads((run / "privacy" / "attacks.json").read_text())


def _fingerprints(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*")) if p.is_file()}


def test_without_defence_the_server_finds_a_stores_items_and_secagg_hides_them(tmp_path):
    data = write_random_sequences(tmp_path / "random.txt", n_users=600, n_items=300)
    run = tmp_path / "plain"
    result = fedrec("simulate", "--model", "lstm", "--data", str(data), "--partition", "store", "--num-clients", "5",
                    "--rounds", "3", "--audit-holdout", "0.3", *SMALL, "--out", str(run))
    assert result.returncode == 0, result.stderr[-3000:]

    audit = fedrec("privacy-audit", str(run))

    assert audit.returncode == 0, audit.stderr[-3000:]
    leakage = _attacks(run)["item_leakage"]
    assert leakage["round"] == 3 and leakage["stores"] == 5
    each, summed = leakage["views"]
    assert each["view"] == "each store's update (no defence)" and each["own"]
    assert not summed["own"] and summed["secure"]
    assert each["all"]["auc"] >= 0.9 and each["single_buyer"]["auc"] >= 0.85
    assert summed["all"]["auc"] < each["all"]["auc"] - 0.2
    assert summed["single_buyer"]["auc"] <= leakage["popularity"]["single_buyer"]["auc"] + 0.1
    membership = _attacks(run)["membership"]
    assert membership["non_members"] > 100 and membership["members"] == membership["non_members"]
    assert "item leakage, each store's update (no defence): AUC" in audit.stdout


def test_an_honest_dp_run_passes_and_the_audit_changes_nothing_the_run_wrote(random_purchases, tmp_path):
    run = tmp_path / "honest"
    result = fedrec("simulate", *DP_RUN, "--data", str(random_purchases), "--out", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    before = _fingerprints(run)

    audit = fedrec("privacy-audit", str(run))

    assert audit.returncode == 0, audit.stderr[-3000:]
    attacks = _attacks(run)
    assert attacks["mode"] == "per-store DP" and attacks["accounted_epsilon"] <= 1.0
    assert attacks["membership"]["epsilon_lower_bound"] <= attacks["accounted_epsilon"]
    assert attacks["canaries"]["epsilon_lower_bound"] <= attacks["accounted_epsilon"] < attacks["canaries"]["largest_provable"]
    assert attacks["verdict"]["consistent"] is True
    assert [v["view"] for v in attacks["item_leakage"]["views"]] == [
        "each store's noised update (per-store DP)", "the sum of noised updates (per-store DP and SecAgg+)"]
    after = _fingerprints(run)
    written = {"privacy/attacks.json", "privacy/attacks.md", "privacy/report.json", "privacy/report.md"}
    assert {k: v for k, v in after.items() if k not in written and not k.endswith(".png")} == \
        {k: v for k, v in before.items() if k not in written and not k.endswith(".png")}  # ledgers and state untouched
    report = json.loads((run / "privacy" / "report.json").read_text())
    assert report["empirical_audit"]["consistent"] is True


def test_the_audit_fails_a_planted_bug_that_drops_the_noise_but_claims_epsilon_8(random_purchases, tmp_path):
    """The membership attack alone can prove about 5 here (its held-out customers bound it);
    the Dirac canaries can prove 8.6, and a run without noise gives them exactly that."""
    run = tmp_path / "planted"
    at = DP_RUN.index("--target-epsilon") + 1
    claims_8 = [*DP_RUN[:at], "8", *DP_RUN[at + 1:]]  # --target-epsilon 8, the default
    planted = fedrec("simulate", *claims_8, "--data", str(random_purchases), "--out", str(run),
                     env={**os.environ, "PYTHONPATH": os.pathsep.join([str(NOISE_OFF), *filter(None, [os.environ.get("PYTHONPATH")])])})
    assert planted.returncode == 0, planted.stderr[-3000:]
    assert "PLANTED BUG noise-off" in planted.stderr  # said loudly

    audit = fedrec("privacy-audit", str(run), "--no-leakage")

    assert audit.returncode == INCONSISTENT, audit.stderr[-3000:]
    attacks = _attacks(run)
    assert 7.9 <= attacks["accounted_epsilon"] <= 8.0
    assert attacks["membership"]["largest_provable"] < attacks["accounted_epsilon"]  # too few customers to tell
    assert attacks["canaries"]["largest_provable"] > 8.5
    assert attacks["canaries"]["epsilon_lower_bound"] > attacks["accounted_epsilon"]
    assert attacks["verdict"]["consistent"] is False and attacks["verdict"]["attack"] == "canaries"
    assert "INCONSISTENT" in audit.stdout
    report = json.loads((run / "privacy" / "report.json").read_text())
    assert report["empirical_audit"]["consistent"] is False
    assert "ABOVE the accounted epsilon" in (run / "privacy" / "report.md").read_text()
