"""What the release audit costs on top of the evaluation pass a run already makes.

    python simulations/benchmark_audit.py [--run /tmp/equiv-new/lstm_epochs_3] [--out runs/bench-audit]
        [--repeats 5] [--threads N]

On a trained run (Beauty by default): times the evaluation pass of its test split without
top-k lists (top_k=0, what training does), with the top-10 lists the audits read
(top_k=10), and the audits on top (groupings, group utility with bootstrap intervals,
exposure, popularity, providers, popularity baseline, gate: ``compute_audits`` + ``gate``),
each ``--repeats`` times in this process after one warm-up; reports the median wall and
CPU seconds (and the best wall). The two passes alternate (plain, top-k, plain, ...), and
what the top-k lists add is the median of each round's difference, so machine noise hits
both passes alike.
Prints a table and writes ``<out>/audit.json``. The goal (issue 16): audit seconds, top-k
lists included, at most 10% of the evaluation pass.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fedrec.audit.gate import gate
from fedrec.config import AuditConfig
from fedrec.evaluation import evaluation_pass
from fedrec.release.audit_run import compute_audits, open_subject

DEFAULT_RUN = "/tmp/equiv-new/lstm_epochs_3"


def timed(steps: dict, repeats: int) -> tuple[dict[str, dict[str, list[float]]], dict[str, object]]:
    """Each step once to warm up (first-touch allocations, lazy imports), then ``repeats``
    rounds of all of them in turn. Returns each step's wall and CPU seconds per round (CPU:
    this process, all threads; it moves less than wall time on a shared machine) and its last result."""
    results = {name: step() for name, step in steps.items()}
    seconds: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = step()
            seconds[name]["cpu"].append(time.process_time() - cpu)
            seconds[name]["wall"].append(time.perf_counter() - wall)
    return seconds, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(DEFAULT_RUN), help="a finished run directory")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-audit"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: what the run's model sets, else torch's own)")
    args = parser.parse_args()
    config = AuditConfig()
    subject = open_subject(args.run)
    if args.threads:  # after loading: a torch model sets its run's own thread count when built
        torch.set_num_threads(args.threads)
    test, mask, k = subject.split.test, subject.mask_history, config.top_k
    runs, results = timed({
        "plain": lambda: evaluation_pass(subject.model, test, mask_history=mask),
        "top_k": lambda: evaluation_pass(subject.model, test, mask_history=mask, top_k=k),
    }, args.repeats)
    evaluated = results["top_k"]
    audit_runs, results = timed({"audits": lambda: compute_audits(subject, evaluated, config)}, args.repeats)
    audits = results["audits"]
    gate_runs, results = timed({"gate": lambda: gate(audits, config)}, args.repeats)
    runs.update(audit_runs)
    runs.update(gate_runs)

    def summary(clock: str) -> dict[str, float]:
        median = {name: statistics.median(run[clock]) for name, run in runs.items()}
        # what the lists add: the median of each round's difference (the two passes alternate)
        top_k = statistics.median(b - a for a, b in zip(runs["plain"][clock], runs["top_k"][clock]))
        return {"evaluation_pass_top_k_0": median["plain"], f"evaluation_pass_top_k_{k}": median["top_k"],
                "top_k_over_plain_pass": top_k, "audits": median["audits"], "gate": median["gate"],
                "audit_total_over_plain_pass": top_k + median["audits"] + median["gate"]}

    wall, cpu = summary("wall"), summary("cpu")
    plain = wall["evaluation_pass_top_k_0"]
    result = {
        "run": str(args.run), "model": subject.document.get("model"), "data": subject.data.source,
        "users": len(test.users), "items": subject.data.n_items, "groupings": list(audits["groups"]),
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "seconds": {name: round(value, 6 if name == "gate" else 4) for name, value in wall.items()},
        "best_seconds": {"evaluation_pass_top_k_0": round(min(runs["plain"]["wall"]), 4),
                         f"evaluation_pass_top_k_{k}": round(min(runs["top_k"]["wall"]), 4),
                         "audits": round(min(runs["audits"]["wall"]), 4)},
        "cpu_seconds": {name: round(value, 6 if name == "gate" else 4) for name, value in cpu.items()},
        "top_k_share_of_evaluation_pass": round(wall["top_k_over_plain_pass"] / plain, 4),
        "audit_share_of_evaluation_pass": round(wall["audit_total_over_plain_pass"] / plain, 4),
        "cpu_audit_share_of_evaluation_pass":
            round(cpu["audit_total_over_plain_pass"] / cpu["evaluation_pass_top_k_0"], 4),
        "goal_share": 0.10, "verdict": results["gate"]["verdict"],
    }
    print(f"{result['model']} on {result['data']}: {result['users']} users x {result['items']} items, "
          f"{result['threads']} threads, {args.repeats} rounds")
    print(f"  {'':<34} {'wall median (best)':>20} {'share':>7} {'cpu median':>11} {'share':>7}")
    rows = [("evaluation pass, top_k=0", "evaluation_pass_top_k_0", "plain"),
            (f"evaluation pass, top_k={k}", f"evaluation_pass_top_k_{k}", "top_k"),
            (f"  top-{k} lists over the plain pass", "top_k_over_plain_pass", None),
            ("audits (compute_audits)", "audits", "audits"), ("gate", "gate", "gate"),
            ("audit cost over the plain pass", "audit_total_over_plain_pass", None)]
    for label, key, name in rows:
        best = f"({min(runs[name]['wall']):.3f})" if name else ""
        wall_share, cpu_share = wall[key] / plain, cpu[key] / cpu["evaluation_pass_top_k_0"]
        print(f"  {label:<34} {wall[key]:8.3f} s {best:>9} {wall_share:7.1%} {cpu[key]:9.3f} s {cpu_share:7.1%}")
    print(f"  audit share of the pass: {result['audit_share_of_evaluation_pass']:.1%} wall, "
          f"{result['cpu_audit_share_of_evaluation_pass']:.1%} cpu (goal <= 10%); verdict {result['verdict']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(args.out / "audit.json")


if __name__ == "__main__":
    main()
