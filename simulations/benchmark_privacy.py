"""Accuracy against privacy on Beauty: federated LSTM (50 non-IID stores), the centralised
DP-LSTM reference and the DP popularity floor, at each epsilon; prints a table, writes JSON.

    python simulations/benchmark_privacy.py --out runs/bench-privacy [--epsilons 1 4 8 none]
        [--rounds 20] [--kinds pop fed central distributed] [--attributes off]

Kinds: pop (the DP popularity floor), central (`fedrec train --dp`), fed (per-store DP-SGD,
`--dp local`) and distributed (`--dp distributed`: one DP-SGD run across the stores, with the
noise shares summed on the plain aggregation path, `--no-secagg`: the same mechanism as under
SecAgg+ but for its quantization; tests/federation/test_distributed_dp.py checks the two agree).

Each run is a real `fedrec` process (wall time and peak RSS of its process tree). A run
directory with a complete metrics.json is reused, so an interrupted benchmark resumes (an interrupted
simulation continues from its last checkpoint). Each row's epsilon is recomputed here, from the
report's histories alone, by a fresh Opacus accountant (``epsilon_check``: the largest relative
difference over the report's clients).
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
from opacus.accountants import create_accountant  # noqa: E402

FEDREC = [sys.executable, "-m", "fedrec.cli"]
STORES = ["--partition", "store", "--num-clients", "50"]
# Every row runs the defaults of its model and mode (fedrec.federation.recipes and the models'
# recipes): federated DP = 10 rounds x 1 local epoch, per-store prior noise 3, a 500-item
# vocabulary; central DP = 10 epochs, batch 1024, Adam 2e-2; both read the catalog's item
# attributes (public: no privacy cost) when the data has them. Non-private federated = the
# Mime recipe, 100 rounds.


def command_for(kind: str, epsilon: float | None, rounds: int | None, model: str = "lstm") -> list[str]:
    mode = ["distributed", "--no-secagg"] if kind == "distributed" else []
    dp = [] if epsilon is None else ["--dp", *mode, "--target-epsilon", f"{epsilon:g}"]
    if epsilon is not None and epsilon < 4 and kind != "pop":
        dp += ["--prior-noise", "10"]  # the prior must leave most of a small budget to training
    if kind in ("fed", "distributed"):
        return ["simulate", "--model", model, *STORES, *([] if rounds is None else ["--rounds", str(rounds)]), *dp]
    if kind == "central":
        return ["train", "--model", model, *dp]
    return ["train", "--model", "pop", *dp]


def summarise(kind: str, epsilon: float | None, run_dir: Path, measured: dict | None) -> dict:
    document = json.loads((run_dir / "metrics.json").read_text())
    report_file = run_dir / "privacy" / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    if kind in ("fed", "distributed"):  # under DP the last round (fedrec.federation.run_record.reported_round)
        metrics = document["metrics"]
        chosen = f"round {document['reported_round']} ({document['round_selection']})"
    else:
        metrics = document["metrics"]
        training = document.get("training", {})
        chosen = f"epoch {training.get('best_epoch')}" if kind == "central" else "-"
    return {
        "kind": kind,
        "target_epsilon": epsilon,
        "epsilon": run_epsilon(report),
        "epsilon_check": recomputed_gap(report),
        "delta": report.get("delta"),
        "hr@10": round(metrics["hr@10"], 4),
        "ndcg@10": round(metrics["ndcg@10"], 4),
        "model_used": chosen,
        "release_gate": (document.get("release_gate") or {}).get("verdict"),
        "wall_seconds": round(document["wall_seconds"], 1),
        "peak_rss_mb": (measured or {}).get("peak_tree_rss_mb", document.get("peak_rss_mb")),
    }


def run_epsilon(report: dict) -> float | None:
    """The run's epsilon: under distributed DP the federation's one ledger (without SecAgg+ the
    report also holds the server's view of single shares, a weaker bound reported beside it)."""
    federation = [c["epsilon"] for c in report.get("clients", []) if c["client"].startswith("federation")]
    return federation[0] if federation else report.get("epsilon_max")


def recomputed_gap(report: dict) -> float | None:
    """The largest relative difference between a client's reported epsilon and a fresh Opacus
    accountant's on that client's history as report.json gives it (None without DP)."""
    gaps = []
    for client in report.get("clients", []):
        fresh = create_accountant(client["accountant"])
        fresh.history = [tuple(h) for h in client["history"]]
        epsilon = fresh.get_epsilon(delta=client["delta"]) if fresh.history else 0.0
        gaps.append(abs(epsilon - client["epsilon"]) / max(client["epsilon"], 1e-12))
    return max(gaps) if gaps else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-privacy"))
    parser.add_argument("--epsilons", nargs="+", default=["1", "4", "8", "none"])
    parser.add_argument("--kinds", nargs="+", default=["pop", "fed", "central"], choices=["pop", "fed", "central", "distributed"])
    parser.add_argument("--attributes", default="on", choices=["on", "off"],
                        help="off: the models read no catalog attributes (--attribute-buckets 0)")
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
            attributes = []
            if args.attributes == "off" and kind != "pop":
                name, attributes = f"{name}-no-attributes", ["--attribute-buckets", "0"]
            run_dir = args.out / name
            command = [*FEDREC, *command_for(kind, epsilon, args.rounds, args.model), *attributes, "--out", str(run_dir)]
            outcome = run_or_reuse(name, command, run_dir, args.out / f"{name}.log")
            if outcome is None:
                continue
            _, measured = outcome
            rows.append(summarise(kind, epsilon, run_dir, measured))
            r = rows[-1]
            print(f"{name}: HR@10 {r['hr@10']:.4f} NDCG@10 {r['ndcg@10']:.4f} epsilon {r['epsilon']} ({r['wall_seconds']:.0f} s)", flush=True)
    print("\n| run | target ε | ε spent (δ) | fresh accountant gap | HR@10 | NDCG@10 | model used | wall s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        spent = "-" if r["epsilon"] is None else f"{r['epsilon']:.2f} ({r['delta']:.0e})"
        gap = "-" if r["epsilon_check"] is None else f"{r['epsilon_check']:.1e}"
        print(f"| {r['kind']} | {r['target_epsilon'] if r['target_epsilon'] is not None else 'none'} | {spent} | {gap} | "
              f"{r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['model_used']} | {r['wall_seconds']:.0f} | {r['peak_rss_mb']} |")
    write_table(args.out / "privacy_benchmark.json", {"rows": rows})


if __name__ == "__main__":
    main()
