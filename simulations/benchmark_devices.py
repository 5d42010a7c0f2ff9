"""Seconds per round of the cross-device workload, side by side with Apple's pfl-research (issue 35).

    python simulations/benchmark_devices.py --out runs/bench-devices [--rounds 3] [--threads 1] [--recipe issue|default]
        [--arms pfl,pfl-fused,fedrec-loop,fedrec-loop-unfused,fedrec-simulate] [--pfl-python .venv-pfl/bin/python]

The workload: fedrec's LSTM (the federated ``--partition user`` recipe, resolved by
``fedrec.federation.recipes.resolve_run``: Adam 5e-3, dim 64, dropout 0.3, 1024 attribute
buckets on Beauty) on the embedded Beauty data, leave-one-out; each round 223 one-user clients
(1% of 22,363), each taking 2 local Adam steps on its own train window (one batch: every
position of the user's train sequence), weighted by its next-item targets; the server takes
FedAvgM (server lr 1.0, momentum 0.5) on the weighted mean. No DP, no evaluation, no
touched-row averaging. The cohorts are drawn once (seeded) and given to every arm that
samples itself.

Arms, each in its own process (peak RSS: the process tree's, sampled every 0.5 s):
  pfl                pfl-research 0.6's own simulation (simulations/pfl_arm.py, in the
                     --pfl-python interpreter): PyTorchModel around fedrec's SequenceNet and
                     loss, a FederatedDataset of one user per client, FederatedAveraging with a
                     central torch SGD (momentum 0.5) as FedAvgM.
  pfl-fused          the same with torch's fused Adam as the local optimizer.
  fedrec-loop        the 223 local updates one after another in one process with one reused
                     fedrec model, through fedrec's own train_local_epochs and its model's
                     make_optimizer (fused Adam since commit 70945c9): the compute floor a
                     fedrec device engine aims at.
  fedrec-loop-unfused  the same with torch's default Adam (fused=False, the per-tensor loop).
  fedrec-simulate    `fedrec simulate --model lstm --partition user` on Flower's simulation
                     engine (since dddf238 the devices live in a few shard SuperNodes; fedrec
                     samples its own cohorts), same recipe, no touched rows; per-round
                     ``wall_seconds`` from its metrics.json.

Prints a table and writes <out>/benchmark_devices.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured, write_table  # noqa: E402  (wall time and the process tree's peak RSS)

from fedrec.config import FederationConfig, TrainConfig  # noqa: E402
from fedrec.data import LeaveOneOut, leave_one_out, load_dataset  # noqa: E402
from fedrec.models import create_model  # noqa: E402
from fedrec.models.torch_model import TorchRecommender  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("pfl", "pfl-fused", "fedrec-loop", "fedrec-loop-unfused", "fedrec-simulate")
DEFAULT_ARMS = "pfl,pfl-fused,fedrec-loop,fedrec-loop-unfused"
COHORT_FRACTION = 0.01  # the --partition user recipe's fraction: 223 of Beauty's 22,363 users
SERVER_LR = 1.0


# --- the workload, shared with simulations/pfl_arm.py (which runs where flwr is not installed) ---

def load_workload(spec: dict) -> tuple[TorchRecommender, LeaveOneOut]:
    """The fresh global model (seeded: the same initial weights in every arm) and the split."""
    torch.set_num_threads(spec["threads"])
    data = load_dataset(spec["data"])
    split = leave_one_out(data)
    model = create_model("lstm", TrainConfig.from_mapping(spec["train"]), n_users=1, n_items=data.n_items)
    model.use_item_attributes(data)
    return model, split


def user_split(split: LeaveOneOut, user: int) -> LeaveOneOut:
    """One device's data: the split with only ``user``'s train sequence (all its model reads)."""
    return dataclasses.replace(split, train=[split.train[user]], train_ratings=None)


def targets_of(split: LeaveOneOut, user: int) -> int:
    """A device's averaging weight, as fedrec's clients report it: its next-item targets."""
    return max(0, len(split.train[user]) - 1)


# --recipe issue: the workload (client Adam 5e-3, 2 local steps, FedAvgM 0.5), given as
# options; --recipe default: the device default since f68993e (one local SGD step, FedAdam).
RECIPES = {
    "issue": ({"optimizer": "adam", "lr": 5e-3}, {"strategy": "fedavgm", "local_epochs": 2, "server_momentum": 0.5,
                                                  "server_lr": SERVER_LR}),
    "default": ({}, {}),
}
RECIPE_FLAGS = {"issue": ["--optimizer", "adam", "--lr", "5e-3", "--strategy", "fedavgm", "--local-epochs", "2",
                          "--server-momentum", "0.5", "--server-lr", str(SERVER_LR)], "default": []}


def write_spec(path: Path, *, rounds: int, threads: int, seed: int, data: str, recipe: str = "issue") -> dict:
    """Resolve the cross-device recipe once and draw every round's cohort."""
    from fedrec.federation.recipes import resolve_run  # imports flwr: only the driver resolves

    dataset = load_dataset(data)
    train_fields, federation_fields = RECIPES[recipe]
    train, federation = resolve_run(TrainConfig(model="lstm", data=data, seed=seed, threads=threads, **train_fields),
                                    FederationConfig(partition="user", **federation_fields),
                                    item_attributes=dataset.has_item_attributes, simulated=True)
    cohort = int(COHORT_FRACTION * dataset.n_users)
    rng = np.random.default_rng(seed)
    spec = {
        "data": data, "threads": threads, "seed": seed, "rounds": rounds, "cohort_size": cohort, "recipe": recipe,
        "local_steps": federation.local_epochs, "server_strategy": federation.strategy, "server_lr": federation.server_lr,
        "server_momentum": federation.server_momentum,
        "train": dataclasses.asdict(train),
        "cohorts": [sorted(rng.choice(dataset.n_users, cohort, replace=False).tolist()) for _ in range(rounds)],
    }
    path.write_text(json.dumps(spec) + "\n")
    return spec


# --- fedrec-loop: every device's local update in one process, one reused model ---

def fedrec_loop(spec: dict, *, unfused: bool, weights_out: Path | None = None) -> dict:
    from fedrec.training.local import train_local_epochs

    if spec["server_strategy"] != "fedavgm":
        raise SystemExit("the fedrec-loop arms run the issue's recipe (FedAvgM); use --recipe issue")
    model, split = load_workload(spec)
    if unfused:  # this instance's optimiser only: torch's default Adam, as fedrec used before 70945c9
        model.make_optimizer = lambda module=None: torch.optim.Adam(
            model.net.parameters(), lr=model.config.lr, weight_decay=model.config.weight_decay, fused=False)
    params = model.shared_parameters()  # name -> trainable parameter of the reused model
    global_weights = {name: p.detach().clone() for name, p in params.items()}
    velocity: dict[str, torch.Tensor] = {}
    seconds = []
    for round_number, cohort in enumerate(spec["cohorts"], start=1):
        started = time.perf_counter()
        total = {name: torch.zeros_like(w) for name, w in global_weights.items()}
        weight_sum = 0
        for user in cohort:
            with torch.no_grad():  # the device receives the global model (trainable weights; buffers never change)
                for name, p in params.items():
                    p.copy_(global_weights[name])
            train_local_epochs(model, user_split(split, user), spec["local_steps"], round_seed=round_number)
            weight = targets_of(split, user)
            with torch.no_grad():
                for name, p in params.items():
                    total[name].add_(p, alpha=weight)
            weight_sum += weight
        with torch.no_grad():  # FedAvgM as Flower's: v = m v + (w - mean); w -= lr v
            for name, w in global_weights.items():
                step = w - total[name] / weight_sum
                velocity[name] = step if name not in velocity else velocity[name].mul_(spec["server_momentum"]).add_(step)
                w.sub_(velocity[name], alpha=spec["server_lr"])
        seconds.append(time.perf_counter() - started)
    if weights_out is not None:  # to check the arms against each other (same cohorts, dropout 0)
        torch.save(global_weights, weights_out)
    return {"seconds_per_round": seconds, "load_partial_state_ms": _load_partial_state_ms(model, global_weights)}


def _load_partial_state_ms(model: TorchRecommender, global_weights: dict[str, torch.Tensor]) -> float:
    """What fedrec's own per-client load (``load_partial_state``, as build_client_model does)
    costs per device, against the plain parameter copy the loop uses."""
    state = model.shareable_state()
    state.update(global_weights)
    started = time.perf_counter()
    for _ in range(20):
        model.load_partial_state(state)
    return (time.perf_counter() - started) / 20 * 1000


# --- the driver ---

def run_arm(arm: str, spec_path: Path, out: Path, args: argparse.Namespace) -> dict:
    result_path = out / f"{arm}.result.json"
    result_path.unlink(missing_ok=True)
    if arm.startswith("pfl"):
        command = [args.pfl_python, str(Path(__file__).with_name("pfl_arm.py")), "--spec", str(spec_path),
                   "--result", str(result_path), *(["--fused"] if arm == "pfl-fused" else [])]
    elif arm == "fedrec-simulate":
        return run_simulate(out, args)
    else:
        command = [sys.executable, __file__, "--arm-worker", arm, "--spec", str(spec_path), "--result", str(result_path)]
    print("$", " ".join(command), flush=True)
    measured = run_measured(command, log_path=out / f"{arm}.log")
    if measured.returncode != 0:
        return {"arm": arm, "error": f"exit {measured.returncode}; see {out / f'{arm}.log'}"}
    return {"arm": arm, **json.loads(result_path.read_text()), "peak_tree_rss_mb": measured.peak_tree_rss_mb,
            "process_wall_seconds": round(measured.wall_seconds, 1)}


def run_simulate(out: Path, args: argparse.Namespace) -> dict:
    run_dir = out / "fedrec-simulate"
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; move it away (a benchmark row must come from the command it names).")
    command = [str(ROOT / ".venv" / "bin" / "fedrec"), "simulate", "--model", "lstm", "--partition", "user",
               "--rounds", str(args.simulate_rounds or args.rounds), "--no-server-eval", "--fraction-evaluate", "0",
               "--no-touched-rows", "--no-release-gate", "--threads", str(args.threads), "--seed", str(args.seed),
               *RECIPE_FLAGS[args.recipe], "--out", str(run_dir)]
    print("$", " ".join(command), flush=True)
    measured = run_measured(command, log_path=out / "fedrec-simulate.log")
    if measured.returncode != 0:
        return {"arm": "fedrec-simulate", "error": f"exit {measured.returncode}; see {out / 'fedrec-simulate.log'}"}
    rounds = json.loads((run_dir / "metrics.json").read_text())["rounds"]
    return {"arm": "fedrec-simulate", "seconds_per_round": [r["wall_seconds"] for r in rounds], "command": command[1:],
            "peak_tree_rss_mb": measured.peak_tree_rss_mb, "process_wall_seconds": round(measured.wall_seconds, 1)}


def summarise(row: dict, threads: int) -> dict:
    seconds = row.get("seconds_per_round") or []
    if seconds:
        row.update(rounds=len(seconds), median_s=round(statistics.median(seconds), 3), min_s=round(min(seconds), 3),
                   max_s=round(max(seconds), 3), seconds_per_round=[round(s, 3) for s in seconds])
    row.setdefault("threads", threads)
    return row


def print_table(rows: list[dict]) -> None:
    print(f"\n{'arm':<20} {'rounds':>6} {'median s':>9} {'min s':>7} {'max s':>7} {'threads':>7} {'peak RSS MB':>11}")
    for row in rows:
        if "error" in row:
            print(f"{row['arm']:<20} {row['error']}")
            continue
        print(f"{row['arm']:<20} {row['rounds']:>6} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['max_s']:>7.3f} "
              f"{row['threads']:>7} {row['peak_tree_rss_mb']:>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for benchmark_devices.json, the arms' logs and the simulate run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--simulate-rounds", type=int, help="rounds of fedrec-simulate (default --rounds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every arm")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="issue",
                        help="issue: 2 local Adam steps, FedAvgM 0.5 (the issue's workload); default: the device default "
                             "(one local SGD step, FedAdam; its shards sum each step in one pass)")
    parser.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--pfl-python", default=str(ROOT / ".venv-pfl" / "bin" / "python"),
                        help="interpreter with pfl[pytorch]==0.6.0 and fedrec (--no-deps) installed")
    parser.add_argument("--arm-worker", choices=("fedrec-loop", "fedrec-loop-unfused"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm_worker:  # one arm, in its own process
        result = fedrec_loop(json.loads(args.spec.read_text()), unfused=args.arm_worker == "fedrec-loop-unfused",
                             weights_out=args.weights_out)
        args.result.write_text(json.dumps(result) + "\n")
        return
    if args.out is None:
        parser.error("--out DIR is required")
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    spec_path = args.out / "workload.json"
    spec = write_spec(spec_path, rounds=args.rounds, threads=args.threads, seed=args.seed, data="beauty", recipe=args.recipe)
    rows = [summarise(run_arm(arm, spec_path, args.out, args), args.threads) for arm in arms]
    print_table(rows)
    write_table(args.out / "benchmark_devices.json", {
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "fedrec_commit": _fedrec_commit(), "torch": torch.__version__, "pfl": _pfl_version(args.pfl_python) if any(a.startswith("pfl") for a in arms) else None,
        "workload": {k: v for k, v in spec.items() if k != "cohorts"}, "arms": rows,
    })


def _fedrec_commit() -> str:
    """HEAD, and "+dirty" when fedrec/ had uncommitted edits (the arms import the working tree)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "fedrec"], capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def _pfl_version(python: str) -> str | None:
    done = subprocess.run([python, "-c", "import pfl.version as v; print(v.__version__)"], capture_output=True, text=True)
    return done.stdout.strip() or None


if __name__ == "__main__":
    main()
