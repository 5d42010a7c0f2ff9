"""What the release audit costs on top of the evaluation pass a run already makes.

    python simulations/benchmark_audit.py [--run /tmp/equiv-new/lstm_epochs_3] [--out runs/bench-audit]
        [--repeats 3] [--threads N]

On a trained run (Beauty by default): times the evaluation pass of its test split without
top-k lists (top_k=0, what training does), with the top-10 lists the audits read
(top_k=10), and the audits on top (groupings, group utility with bootstrap intervals,
exposure, popularity, providers, popularity baseline, gate: ``compute_audits`` + ``gate``),
each ``--repeats`` times in this process after one warm-up; reports the median. Prints a
table and writes ``<out>/audit.json``. The goal (issue 16): audit seconds, top-k lists
included, at most 10% of the evaluation pass.
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


def timed(step, repeats: int) -> tuple[float, object]:
    result = step()  # warm-up (first-touch allocations, lazy imports)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(DEFAULT_RUN), help="a finished run directory")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-audit"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = AuditConfig()
    subject = open_subject(args.run)
    test, mask = subject.split.test, subject.mask_history
    plain, _ = timed(lambda: evaluation_pass(subject.model, test, mask_history=mask), args.repeats)
    with_top, evaluated = timed(lambda: evaluation_pass(subject.model, test, mask_history=mask, top_k=config.top_k),
                                args.repeats)
    audits_s, audits = timed(lambda: compute_audits(subject, evaluated, config), args.repeats)
    gate_s, verdict = timed(lambda: gate(audits, config), args.repeats)
    extra = (with_top - plain) + audits_s + gate_s
    result = {
        "run": str(args.run), "model": subject.document.get("model"), "data": subject.data.source,
        "users": len(test.users), "items": subject.data.n_items, "groupings": list(audits["groups"]),
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats, "seconds": {
            "evaluation_pass_top_k_0": round(plain, 4), f"evaluation_pass_top_k_{config.top_k}": round(with_top, 4),
            "audits": round(audits_s, 4), "gate": round(gate_s, 6), "audit_total_over_plain_pass": round(extra, 4),
        },
        "audit_share_of_evaluation_pass": round(extra / plain, 4), "goal_share": 0.10,
        "verdict": verdict["verdict"],
    }
    rows = [("evaluation pass, top_k=0", plain), (f"evaluation pass, top_k={config.top_k}", with_top),
            ("audits (compute_audits)", audits_s), ("gate", gate_s), ("audit cost over the plain pass", extra)]
    print(f"{result['model']} on {result['data']}: {result['users']} users x {result['items']} items, "
          f"{result['threads']} threads, median of {args.repeats}")
    for name, seconds in rows:
        print(f"  {name:<34} {seconds:8.3f} s")
    print(f"  audit share of the pass: {result['audit_share_of_evaluation_pass']:.1%} (goal <= 10%); "
          f"verdict {result['verdict']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(args.out / "audit.json")


if __name__ == "__main__":
    main()
