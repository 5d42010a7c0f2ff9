"""Accuracy against privacy on Beauty: federated LSTM (50 non-IID stores), the centralised
DP-LSTM reference and the DP popularity floor, at each epsilon; prints a table, writes JSON.

    python simulations/benchmark_privacy.py --out runs/bench-privacy [--epsilons 1 4 8 none]
        [--rounds 20] [--kinds pop fed central]

Each run is a real `fedrec` process (wall time and peak RSS of its process tree). A run
directory with a complete metrics.json is reused, so an interrupted benchmark resumes.
DP rows report the model of the LAST round/epoch: choosing a round on held-out user data
would be a release the privacy accounting does not cover. Epsilon is read back from each
run's privacy/report.json (recomputed there from the ledgers), not from the request.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_or_reuse, write_table  # noqa: E402

FEDREC = [sys.executable, "-m", "fedrec.cli"]
STORES = ["--partition", "store", "--num-clients", "50"]
# Every row runs the defaults of its model and mode (fedrec.federation.recipes and the models'
# recipes): federated DP = 10 rounds x 1 local epoch, per-store prior noise 3, a 500-item
# vocabulary; central DP = 10 epochs, batch 1024, Adam 2e-2; both read the catalog's item
# attributes (public: no privacy cost) when the data has them. Non-private federated = the
# Mime recipe, 100 rounds.


def command_for(kind: str, epsilon: float | None, rounds: int | None, model: str = "lstm") -> list[str]:
    dp = [] if epsilon is None else ["--dp", "--target-epsilon", f"{epsilon:g}"]
    if epsilon is not None and epsilon < 4 and kind != "pop":
        dp += ["--prior-noise", "10"]  # the prior must leave most of a small budget to training
    if kind == "fed":
        return ["simulate", "--model", model, *STORES, *([] if rounds is None else ["--rounds", str(rounds)]), *dp]
    if kind == "central":
        return ["train", "--model", model, *dp]
    return ["train", "--model", "pop", *dp]


def summarise(kind: str, epsilon: float | None, run_dir: Path, measured: dict | None) -> dict:
    document = json.loads((run_dir / "metrics.json").read_text())
    report_file = run_dir / "privacy" / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    if kind == "fed":  # under DP the last round (fedrec.federation.run_record.reported_round)
        metrics = document["metrics"]
        chosen = f"round {document['reported_round']} ({document['round_selection']})"
    else:
        metrics = document["metrics"]
        training = document.get("training", {})
        chosen = f"epoch {training.get('best_epoch')}" if kind == "central" else "-"
    return {
        "kind": kind,
        "target_epsilon": epsilon,
        "epsilon": report.get("epsilon_max"),
        "delta": report.get("delta"),
        "hr@10": round(metrics["hr@10"], 4),
        "ndcg@10": round(metrics["ndcg@10"], 4),
        "model_used": chosen,
        "wall_seconds": round(document["wall_seconds"], 1),
        "peak_rss_mb": (measured or {}).get("peak_tree_rss_mb", document.get("peak_rss_mb")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-privacy"))
    parser.add_argument("--epsilons", nargs="+", default=["1", "4", "8", "none"])
    parser.add_argument("--kinds", nargs="+", default=["pop", "fed", "central"], choices=["pop", "fed", "central"])
    parser.add_argument("--rounds", type=int, default=None, help="federated rounds (default: the recipe's)")
    parser.add_argument("--model", default="lstm", choices=["lstm", "mlp"], help="the fed and central rows' model")
    args = parser.parse_args()
    epsilons = [None if e.lower() == "none" else float(e) for e in args.epsilons]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.kinds:
        for epsilon in epsilons:
            prefix = kind if kind == "pop" or args.model == "lstm" else f"{args.model}-{kind}"
            name = f"{prefix}-eps{'none' if epsilon is None else f'{epsilon:g}'}"
            run_dir = args.out / name
            command = [*FEDREC, *command_for(kind, epsilon, args.rounds, args.model), "--out", str(run_dir)]
            outcome = run_or_reuse(name, command, run_dir, args.out / f"{name}.log")
            if outcome is None:
                continue
            _, measured = outcome
            rows.append(summarise(kind, epsilon, run_dir, measured))
            r = rows[-1]
            print(f"{name}: HR@10 {r['hr@10']:.4f} NDCG@10 {r['ndcg@10']:.4f} epsilon {r['epsilon']} ({r['wall_seconds']:.0f} s)", flush=True)
    print("\n| run | target ε | ε spent (δ) | HR@10 | NDCG@10 | model used | wall s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        spent = "-" if r["epsilon"] is None else f"{r['epsilon']:.2f} ({r['delta']:.0e})"
        print(f"| {r['kind']} | {r['target_epsilon'] if r['target_epsilon'] is not None else 'none'} | {spent} | "
              f"{r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['model_used']} | {r['wall_seconds']:.0f} | {r['peak_rss_mb']} |")
    write_table(args.out / "privacy_benchmark.json", {"rows": rows})


if __name__ == "__main__":
    main()
