"""What a shop's catalog is worth to a federated model: the same shop log, attribute encoder on
and off, under the default DP recipe and the non-DP default.

    python simulations/benchmark_shop_catalog.py --out runs/bench-shop-catalog [--users 4000] [--stores 10]
        [--arms dp-on dp-off plain-on plain-off]

Builds a ``fedrec synth`` log (``--stores`` stores, ``--users`` customers replayed from Beauty,
with its ``shop_catalog.csv``), a key, and runs ``fedrec simulate --data shop.csv
--anonymize-key KEY`` as a user would, one arm after the other in fresh processes:

    dp-*     --dp distributed --target-epsilon 8 (the README main job's recipe)
    plain-*  no privacy flag (the non-DP federated default: 100 rounds, best validation round)
    *-on     --attribute-buckets 1024: brand, category and price band from the catalog
    *-off    --attribute-buckets 0

Each arm's test HR@10 / NDCG@10 (its reported round), wall time and gate verdict go to a
table and ``<out>/shop_catalog.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ARMS = {
    "dp-on": ["--dp", "distributed", "--target-epsilon", "8", "--attribute-buckets", "1024"],
    "dp-off": ["--dp", "distributed", "--target-epsilon", "8", "--attribute-buckets", "0"],
    "plain-on": ["--attribute-buckets", "1024"],
    "plain-off": ["--attribute-buckets", "0"],
}


def fedrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "fedrec"), "-q", *args], capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log, key = args.out / "shop.csv", args.out / "shop.key"
    if not log.exists():
        made = fedrec("synth", "--stores", str(args.stores), "--users", str(args.users), "--out", str(log))
        if made.returncode:
            sys.exit(made.stderr)
    if not key.exists():
        fedrec("keys", "--out", str(key))
    results_path = args.out / "shop_catalog.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for arm in args.arms:
        run = args.out / f"run-{arm}"
        if (run / "metrics.json").exists() and arm in results:
            continue
        started = time.perf_counter()
        done = fedrec("simulate", "--data", str(log), "--anonymize-key", str(key), *ARMS[arm], "--out", str(run))
        wall = time.perf_counter() - started
        document = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
        audit = run / "audit" / "audit.json"
        verdict = json.loads(audit.read_text()).get("verdict") if audit.exists() else None
        results[arm] = {"command": ["fedrec", "simulate", "--data", "shop.csv", "--anonymize-key", "shop.key",
                                    *ARMS[arm], "--out", f"run-{arm}"],
                        "exit": done.returncode, "wall_seconds": round(wall, 1),
                        "hr@10": document.get("metrics", {}).get("hr@10"),
                        "ndcg@10": document.get("metrics", {}).get("ndcg@10"),
                        "reported_round": document.get("reported_round"),
                        "attribute_buckets": (document.get("config") or {}).get("attribute_buckets"),
                        "gate": verdict, "stderr_tail": done.stderr[-600:]}
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{arm}: exit {done.returncode}, HR@10 {results[arm]['hr@10']}, {wall:.0f} s", flush=True)
    print(f"\n{args.stores} stores, {args.users} customers (fedrec synth), each arm a fresh `fedrec simulate`")
    print("| arm | attribute buckets | test HR@10 | NDCG@10 | reported round | gate | wall |")
    print("|---|---|---|---|---|---|---|")
    for arm, r in results.items():
        hr, ndcg = r["hr@10"], r["ndcg@10"]
        print(f"| {arm} | {r['attribute_buckets']} | {hr if hr is None else f'{hr:.4f}'} | "
              f"{ndcg if ndcg is None else f'{ndcg:.4f}'} | {r['reported_round']} | {r['gate']} | {r['wall_seconds']:.0f} s |")
    print(f"-> {results_path}")


if __name__ == "__main__":
    main()
