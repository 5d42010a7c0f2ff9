"""Check coordinates: noise-only entries every distributed noise share carries, so the server
can test that a sum holds the noise the ledgers claim instead of trusting each store.

A store draws K extra coordinates in the same secret draw, at the same std, as the noise it
adds to its share; no customer data enters them, so they cost no privacy. Summed over the n
shares of a round each is N(0, n sigma_share^2) (plus SecAgg+'s rounding, far below it), so
T = sum(x^2) / (n sigma_share^2) follows chi^2 with K degrees of freedom. A sum short of its
noise (a store that adds none: 9/10 of the variance over 10 stores) makes T small; the check
rejects "the noise is as claimed" when T falls below the chi^2_K quantile at 1e-6 / (the
run's checks), a one-sided test with a false-alarm rate of 1e-6 per run (Bonferroni).

With K = 20,000 the ratio T / K has a standard deviation of sqrt(2 / K) = 0.01: a run of 221
checks (the main job's prior and 220 rounds) flags ratios below about 0.94, so one silent
store of 10 (0.90) is caught in practically every round. What it cannot see: a store that
adds noise only to its check coordinates (the code draws both in one call, so a bug cannot
split them; a malicious store can) and noise drawn from a generator the server can predict
(the key is the store's own; tests/federation/test_curious_server.py attacks that).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import chi2

from fedrec.rundir import RunDir, write_json

CHECK_KEY = "dp-check"  # the check coordinates' name beside a share's arrays (and after the prior's counts)
CHECK_COORDINATES = 20_000
FALSE_ALARM_PER_RUN = 1e-6
NOISE_CHECK_FILE = "noise_check.json"  # in DIR/privacy/: every sum's check, by round


@dataclass(frozen=True)
class NoiseCheck:
    """One sum's check: measured / claimed noise variance and the threshold it must reach."""

    round: int  # 0: the popularity prior
    shares: int  # noise shares in the sum
    ratio: float  # mean square of the check coordinates / (shares x share std^2); 1 when as claimed
    threshold: float  # the chi^2 quantile / K: below it the sum is short of its noise
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: a ratio or threshold that could not be measured is None."""
        return {key: None if isinstance(value, float) and not math.isfinite(value) else value
                for key, value in asdict(self).items()}


def check_noise(values: np.ndarray, *, shares: int, share_std: float, checks: int, round_number: int) -> NoiseCheck:
    """The check of one sum's check coordinates ``values`` (the sum over ``shares`` stores, each
    with noise std ``share_std``), one of ``checks`` in the run (they share its false-alarm rate)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    k = values.size
    if k == 0 or shares < 1 or not share_std > 0:
        raise ValueError(f"a noise check needs coordinates, shares and a positive std (got {k}, {shares}, {share_std})")
    ratio = float(np.mean(values ** 2) / (shares * share_std ** 2))
    threshold = float(chi2.ppf(FALSE_ALARM_PER_RUN / max(1, checks), k) / k)
    return NoiseCheck(round=round_number, shares=shares, ratio=ratio, threshold=threshold,
                      passed=bool(math.isfinite(ratio) and ratio >= threshold))


def record_noise_check(run_dir: str | Path, check: NoiseCheck) -> list[dict[str, Any]]:
    """Add ``check`` to the run's ``DIR/privacy/noise_check.json`` (a round checked again, on
    resume, replaces its entry); returns every check so far, by round."""
    path = RunDir(Path(run_dir)).privacy / NOISE_CHECK_FILE
    kept = [entry for entry in load_noise_checks(run_dir) if entry["round"] != check.round]
    checks = sorted([*kept, check.to_dict()], key=lambda entry: entry["round"])
    write_json(path, {"coordinates": CHECK_COORDINATES, "false_alarm_per_run": FALSE_ALARM_PER_RUN, "checks": checks})
    return checks


def load_noise_checks(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's noise checks, by round ([] when it made none)."""
    path = RunDir(Path(run_dir)).privacy / NOISE_CHECK_FILE
    return json.loads(path.read_text(encoding="utf-8"))["checks"] if path.exists() else []


def describe(check: NoiseCheck) -> str:
    """One line for the log and the report: the measured/claimed ratio and the verdict."""
    where = "the popularity prior" if check.round == 0 else f"round {check.round}"
    if not math.isfinite(check.ratio):
        return (f"noise check of {where}: FAILED, a share came without its check coordinates, so its noise is "
                "unchecked; the privacy claim of this run is not verified")
    if check.passed:
        return (f"noise check of {where}: {check.shares} shares hold {check.ratio:.3f} of the claimed noise variance "
                f"(passes above {check.threshold:.3f})")
    return (f"noise check of {where}: FAILED, {check.shares} shares hold only {check.ratio:.3f} of the noise variance the "
            f"ledgers claim (the least a full sum shows by chance once in a million runs is {check.threshold:.3f}): a store "
            "added less noise than its share, and this run's epsilon does not hold; find the store (its logs, its fedrec "
            "version) and do not release the model")
