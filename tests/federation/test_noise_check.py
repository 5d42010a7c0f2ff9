"""The noise check (fedrec.privacy.noise_check): every distributed sum's check coordinates
against the noise its shares claim. The test plays a store that sends no noise (1 of 10, a
planted bug in tests/fixtures/silent_store) and reads what the server concludes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fedrec.privacy.noise_check import CHECK_COORDINATES, check_noise
from fedrec.privacy.report import guarantee, noise_check_summary
from test_simulation import fedrec

SILENT_STORE = Path(__file__).resolve().parents[1] / "fixtures" / "silent_store"
STD = 0.28  # the main job's share std (noise 0.835 x clip 1 / sqrt(9))


def sums(rng: np.random.Generator, *, noisy: int, count: int) -> np.ndarray:
    """``count`` sums of check coordinates over ``noisy`` shares that hold their noise (a silent
    share adds zeros, nothing)."""
    return rng.normal(0.0, STD, size=(count, noisy, CHECK_COORDINATES)).sum(axis=1)


def test_honest_sums_pass_and_a_sum_missing_one_share_in_ten_fails():
    rng = np.random.default_rng(0)  # the test's own draws; the stores' come from their secret keystreams
    honest = [check_noise(s, shares=10, share_std=STD, checks=221, round_number=r + 1)
              for r, s in enumerate(sums(rng, noisy=10, count=100))]
    short = [check_noise(s, shares=10, share_std=STD, checks=221, round_number=r + 1)
             for r, s in enumerate(sums(rng, noisy=9, count=100))]
    assert all(c.passed for c in honest) and all(abs(c.ratio - 1) < 0.06 for c in honest)
    assert not any(c.passed for c in short) and all(abs(c.ratio - 0.9) < 0.05 for c in short)
    assert 0.94 < honest[0].threshold < 0.95  # chi^2 at 1e-6 / 221 over 20,000 coordinates


def test_a_failed_check_heads_the_guarantee_the_model_card_quotes():
    report = {"clients": [], "note": "x", "noise_check": noise_check_summary(
        [{"round": 0, "shares": 10, "ratio": 0.9, "threshold": 0.94, "passed": False}])}
    assert guarantee(report).startswith("The privacy claim FAILED the noise check (round(s) 0")


def test_a_store_that_sends_no_noise_is_flagged_in_every_round(chain_file, tmp_path):
    """1 silent store of 10 under --dp distributed with SecAgg+: every sum (the prior's and each
    round's) holds 9/10 of the claimed noise variance, and the server says so."""
    env = {**os.environ, "FEDREC_SILENT_STORE": "store-3", "PYTHONPATH": os.pathsep.join(
        [str(SILENT_STORE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    run = tmp_path / "run"
    result = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), "--partition", "store", "--num-clients", "10",
                    "--dp", "distributed", "--target-epsilon", "8", "--rounds", "6", "--dim", "8", "--threads", "1",
                    "--no-release-gate", "--out", str(run), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PLANTED BUG silent-store" in result.stderr
    checks = json.loads((run / "privacy" / "noise_check.json").read_text())["checks"]
    assert [c["round"] for c in checks] == list(range(7))  # the prior, then rounds 1..6
    assert sum(not c["passed"] for c in checks) >= 0.95 * len(checks)
    assert all(0.85 < c["ratio"] < 0.95 for c in checks), [c["ratio"] for c in checks]
    assert "noise check of round 1: FAILED" in result.stderr
    report = (run / "privacy" / "report.md").read_text()
    assert "The privacy claim FAILED the noise check" in report and "| 1 | 10 |" in report
