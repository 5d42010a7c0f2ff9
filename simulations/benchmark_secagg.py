"""What secure aggregation costs: seconds and bytes per round with and without SecAgg+, on
Beauty, for LSTM and MF over 10 and 50 non-IID stores; prints a table, writes JSON.

    python simulations/benchmark_secagg.py --out runs/bench-secagg [--models lstm mf] [--stores 10 50] [--rounds 3]
    python simulations/benchmark_secagg.py --out runs/bench-secagg --dp distributed --models lstm --stores 10 50

With ``--dp distributed`` both arms run one distributed DP step a round (target epsilon 8, no
attributes; the plain arm sums the noise shares in clear, --no-secagg), and SecAgg+ runs every
store as every other's neighbour with the threshold the noise is sized for.

Each run is a real `fedrec simulate` process. Both arms train the same recipe (the one
--secagg resolves to: no touched-row averaging, no drift correction), with no evaluation
(neither the server's nor the stores'), so a round is training plus aggregation only.
Rounds after the first are averaged (the first also starts Ray's workers and, under SecAgg+,
asks the stores their weights). Bytes are the payload the server sends and receives in a
round, all stores together (fedrec.federation.traffic). A run directory with a complete
metrics.json is reused, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_or_reuse, write_table  # noqa: E402

FEDREC = [sys.executable, "-m", "fedrec.cli"]
ARMS = {
    "plain": ["--no-touched-rows", "--drift-correction", "none"],
    "secagg": ["--secagg"],
}
DISTRIBUTED = ["--dp", "distributed", "--target-epsilon", "8", "--attribute-buckets", "0"]


def row(name: str, doc: dict) -> dict:
    later = doc["rounds"][1:] or doc["rounds"]
    mean = lambda key: sum(r[key] for r in later) / len(later)  # noqa: E731
    return {
        "run": name,
        "seconds_per_round": round(mean("wall_seconds"), 2),
        "mb_sent_per_round": round(mean("bytes_sent") / 1e6, 2),
        "mb_received_per_round": round(mean("bytes_received") / 1e6, 2),
        "failures": sum(r["failures"] for r in doc["rounds"]),
        "clipped": sum(r.get("secagg_clipped", 0) for r in doc["rounds"]),
        "error_bound": max((r.get("secagg_error_bound", 0.0) for r in doc["rounds"]), default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-secagg"))
    parser.add_argument("--models", nargs="+", default=["lstm", "mf"], choices=["lstm", "mf", "mlp"])
    parser.add_argument("--stores", nargs="+", type=int, default=[10, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dp", default="off", choices=["off", "distributed"], help="distributed: one DP-SGD step a round")
    args = parser.parse_args()
    arms = ARMS if args.dp == "off" else {
        "plain": [*DISTRIBUTED, "--no-secagg"], "secagg": DISTRIBUTED,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models:
        for stores in args.stores:
            pair = {}
            for arm, flags in arms.items():
                name = f"{model}-{stores}-{arm}" + ("-distributed" if args.dp == "distributed" else "")
                run_dir = args.out / name
                command = [*FEDREC, "-q", "simulate", "--model", model, "--partition", "store", "--num-clients", str(stores),
                           "--rounds", str(args.rounds), "--no-server-eval", "--fraction-evaluate", "0",
                           "--no-release-gate", *flags, "--out", str(run_dir)]
                outcome = run_or_reuse(name, command, run_dir, args.out / f"{name}.log")
                if outcome is not None:
                    pair[arm] = row(name, outcome[0])
                    rows.append(pair[arm])
            if len(pair) == 2:
                pair["secagg"]["time_vs_plain"] = round(pair["secagg"]["seconds_per_round"] / pair["plain"]["seconds_per_round"], 2)
                pair["secagg"]["bytes_vs_plain"] = round(
                    (pair["secagg"]["mb_sent_per_round"] + pair["secagg"]["mb_received_per_round"])
                    / (pair["plain"]["mb_sent_per_round"] + pair["plain"]["mb_received_per_round"]), 2)
    print(f"\n{'run':<30}{'s/round':>9}{'MB sent':>9}{'MB recv':>9}{'x time':>8}{'x bytes':>9}{'clipped':>9}{'error bound':>13}")
    for r in rows:
        print(f"{r['run']:<30}{r['seconds_per_round']:>9.1f}{r['mb_sent_per_round']:>9.1f}{r['mb_received_per_round']:>9.1f}"
              f"{r.get('time_vs_plain', ''):>8}{r.get('bytes_vs_plain', ''):>9}{r['clipped']:>9.0f}{r['error_bound']:>13.2e}")
    write_table(args.out / "benchmark.json", {"rows": rows})


if __name__ == "__main__":
    main()
