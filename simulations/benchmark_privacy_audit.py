"""The empirical privacy audit on Beauty (issue 21): federated runs of MF and the LSTM over 50
non-IID stores in each privacy mode, each with 10% of every store's customers held out, then
`fedrec privacy-audit` on each; prints a table and writes JSON.

    python simulations/benchmark_privacy_audit.py --out runs/bench-privacy-audit [--runs NAME ...]

Each run is a real `fedrec simulate` process; a finished run directory is reused (an
interrupted one resumes). Each audit is a real `fedrec privacy-audit` process, timed (wall
seconds, peak RSS). The table has, per run: the attacker views of the item-set leakage attack
(ROC AUC on items bought by a single customer of the store, and over all items, beside the
popularity-only attacker), the membership-inference AUC and TPR at 1% FPR, the empirical
epsilon lower bound beside the accounted epsilon, and the audit's time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured, run_or_reuse, write_table  # noqa: E402

FEDREC = [sys.executable, "-m", "fedrec.cli"]
COMMON = ["--partition", "store", "--num-clients", "50", "--audit-holdout", "0.1", "--no-release-gate"]
# Short runs where the attack needs only one replayed round (leakage) or where the model's
# recipe is long: the plain LSTM's 100 Mime rounds take 50 minutes, 20 give a model that has
# seen every customer 40 times (2 local epochs a round).
RUNS: dict[str, list[str]] = {
    "lstm-distributed": ["--model", "lstm", "--dp", "distributed", "--no-secagg", "--target-epsilon", "8"],
    "mf-plain": ["--model", "mf", "--rounds", "20"],
    "mf-local": ["--model", "mf", "--dp", "--target-epsilon", "8"],
    "lstm-local": ["--model", "lstm", "--dp", "--target-epsilon", "8", "--rounds", "3"],
    "lstm-plain": ["--model", "lstm", "--rounds", "20"],
}


def simulate_all(out: Path, names: list[str]) -> dict[str, Path]:
    done = {}
    for name in names:
        run_dir = out / name
        if run_or_reuse(name, [*FEDREC, "-q", "simulate", *RUNS[name], *COMMON, "--out", str(run_dir)], run_dir,
                        out / f"{name}.log") is not None:
            done[name] = run_dir
    return done


def audit(name: str, run_dir: Path, out: Path) -> dict | None:
    result = run_measured([*FEDREC, "-q", "privacy-audit", str(run_dir)], log_path=out / f"{name}.audit.log")
    if result.returncode != 0:
        print(f"{name}: privacy-audit failed (exit {result.returncode}); see {out / f'{name}.audit.log'}", flush=True)
        return None
    document = json.loads((run_dir / "privacy" / "attacks.json").read_text())
    return {"document": document, "wall_seconds": result.wall_seconds, "peak_tree_rss_mb": result.peak_tree_rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-privacy-audit"))
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--simulate-only", action="store_true", help="run the simulations, audit nothing")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = simulate_all(args.out, args.runs)
    if args.simulate_only:
        return
    table = {name: audited for name, run_dir in runs.items() if (audited := audit(name, run_dir, args.out)) is not None}
    print_table(table)
    write_table(args.out / "privacy_audit_benchmark.json", table)


def print_table(table: dict) -> None:
    print("\n| run | attacker view | leakage AUC, single-buyer items | popularity attacker | all items | TPR@1%FPR |")
    print("|---|---|---|---|---|---|")
    for name, row in table.items():
        leakage = row["document"].get("item_leakage") or {}
        for view in leakage.get("views", []):
            print(f"| {name} | {view['view']} | {_fmt(view['single_buyer']['auc'])} | "
                  f"{_fmt(leakage['popularity']['single_buyer']['auc'])} | {_fmt(view['all']['auc'])} | "
                  f"{_fmt(view['all']['tpr_at_1pct_fpr'])} |")
    print("\n| run | MI AUC | TPR@1%FPR | empirical epsilon >= | accounted epsilon | audit s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, row in table.items():
        mi = row["document"].get("membership") or {}
        print(f"| {name} | {_fmt(mi.get('auc'))} | {_fmt(mi.get('tpr_at_1pct_fpr'))} | "
              f"{_fmt(mi.get('epsilon_lower_bound'))} | {_fmt(row['document'].get('accounted_epsilon'))} | "
              f"{row['wall_seconds']:.0f} | {row['peak_tree_rss_mb']:.0f} |")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
