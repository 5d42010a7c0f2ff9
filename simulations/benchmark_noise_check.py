"""What the noise check costs: the main job's rounds with 20,000 check coordinates per share
against the same rounds with one (fedrec.privacy.noise_check), side by side on this machine.

    python simulations/benchmark_noise_check.py --out runs/bench/noise_check.json [--rounds 12]

Runs `fedrec simulate --model lstm --dp distributed --target-epsilon 8` (the README's main job,
SecAgg+, 10 stores) for ``--rounds`` rounds, alternating 20,000 and 1 check coordinates (both
through simulations/check_coordinates on PYTHONPATH, so both start alike); compares the median
round (round 1 left out). Prints a table and writes JSON. Loading fedrec at every interpreter
start (what a sitecustomize does, Ray's own processes included) made this 2-core machine's
rounds twice as long (8.05 s against 4.14 s), so only the two arms compare with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SETTER = Path(__file__).resolve().parent / "check_coordinates"
CHECKED = 20_000  # fedrec.privacy.noise_check.CHECK_COORDINATES


def run(rounds: int, out: Path, *, baseline: bool) -> list[float]:
    env = {**os.environ, "FEDREC_BENCH_CHECK_COORDINATES": str(1 if baseline else CHECKED),
           "PYTHONPATH": os.pathsep.join([str(SETTER), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [sys.executable, "-m", "fedrec.cli", "simulate", "--model", "lstm", "--dp", "distributed",
               "--target-epsilon", "8", "--rounds", str(rounds), "--no-release-gate", "--out", str(out)]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    document = json.loads((out / "metrics.json").read_text())
    return [r["wall_seconds"] for r in document["rounds"]][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pairs", type=int, default=2, help="alternating runs of each")
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"checked": [], "baseline": []}
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(args.pairs):
            for name in ("baseline", "checked"):
                seconds[name] += run(args.rounds, Path(scratch) / f"{name}-{pair}", baseline=name == "baseline")
    checked, baseline = statistics.median(seconds["checked"]), statistics.median(seconds["baseline"])
    result = {"round_seconds_checked": checked, "round_seconds_baseline": baseline,
              "extra_seconds": checked - baseline, "extra_share": (checked - baseline) / baseline,
              "rounds_each": len(seconds["checked"]), "check_coordinates": CHECKED,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "all": seconds}
    rows = [("median round, 20,000 check coordinates (s)", f"{checked:.3f}"),
            ("median round, 1 check coordinate (s)", f"{baseline:.3f}"),
            ("cost of the check", f"{checked - baseline:+.3f} s ({100 * result['extra_share']:+.1f}%)"),
            ("rounds compared, each", str(result["rounds_each"]))]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
