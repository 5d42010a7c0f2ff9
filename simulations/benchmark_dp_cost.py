"""What DP-SGD costs per training step: time and peak memory, DP / non-DP, same data and batch.

    python simulations/benchmark_dp_cost.py --out runs/bench-dp-cost [--models mf lstm mlp] [--recipes central store]
        [--steps 100] [--repeats 5] [--main-job RUN_DIR]

Each model at the DP defaults of each recipe: ``central`` (``fedrec train --dp``, and what
the README main job's stores run together: its rounds are one central step's batch split
over the stores) and ``store`` (a store's local DP-SGD under ``--dp``), with the catalog's
attributes where the data has them, as those defaults read them. ``--main-job`` adds a
finished main-job run's median round (its metrics.json).

Both sides run the model's DP formulation (one sample per user, the same Poisson-sampled
batches and per-user loss) so the ratio isolates what privacy adds: Opacus DPLSTM (a Python
loop over time steps) instead of the fused nn.LSTM, per-user norms and the clipped sum
(ghost clipping in one backward pass: fedrec.privacy.bookkeeping), noise on every parameter.
Each (model, mode) runs in its own process so its peak RSS is its own, ``--repeats`` times,
interleaved; medians are reported. Writes
<out>/dp_cost.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def worker(model_name: str, private: bool, data: str, steps: int, threads: int, recipe: str = "central") -> dict:
    """Runs inside its own process; prints one JSON line."""
    from fedrec.config import TrainConfig
    from fedrec.data import leave_one_out, load_dataset
    from fedrec.models import create_model, model_class
    from fedrec.privacy.dp_sgd import plan_dp, train_private
    from fedrec.privacy.opacus_layers import make_private_layers
    from fedrec.privacy.secret_noise import SecretNoise

    torch.set_num_threads(threads)
    dataset = load_dataset(data)
    split = leave_one_out(dataset)
    # Both modes use the DP model settings (dims, batch, max_len, vocabulary); only the engine
    # differs.
    config = TrainConfig(model=model_name, data=data, dp="local", noise_multiplier=1.0, threads=threads)
    config = model_class(model_name).resolve_config(config, private=True, federated=recipe == "store",
                                                     item_attributes=dataset.has_item_attributes)
    # The model holds the fused nn.LSTM a non-private user runs; DP training swaps in DPLSTM.
    model = create_model(model_name, config, n_users=dataset.n_users, n_items=dataset.n_items)
    model.use_item_attributes(dataset)
    samples = model.private_samples(split)
    plan = plan_dp(model.config, records=len(samples), planned_epochs=1)
    warmup = 3
    if private:
        model.prepare_private(split)
        make_private_layers(model.net)
        stamps: list[float] = []
        # Only the first warmup + steps users' worth of batches: an epoch over a slice.
        sliced = samples[: min(len(samples), (warmup + steps) * model.config.batch_size)]
        model.private_samples = lambda _split: sliced
        sliced_plan = plan_dp(model.config, records=len(sliced), planned_epochs=1)
        train_private(model, split, sliced_plan, epochs=1, history=[], noise=SecretNoise.fresh(), on_step=lambda: stamps.append(time.perf_counter()))
        timed = stamps[warmup:]
        if len(timed) < 2:
            raise SystemExit(f"{data} has too few users for {warmup} + {steps} DP batches of {model.config.batch_size}; lower --steps.")
        step_seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
        n_steps = len(timed) - 1
    else:
        model.prepare_private(split)
        module = model.private_module()
        module.train()
        optimizer = model.make_optimizer(module)
        generator = torch.Generator().manual_seed(0)
        durations = []
        for step in range(warmup + steps):
            chosen = torch.nonzero(torch.rand(len(samples), generator=generator) < plan.sample_rate).flatten().tolist()
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            model.private_loss(model.private_batch(samples, chosen)).mean().backward()
            optimizer.step()
            if step >= warmup:
                durations.append(time.perf_counter() - started)
        step_seconds = sum(durations) / len(durations)
        n_steps = len(durations)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model_name, "recipe": recipe, "mode": "dp" if private else "plain", "step_seconds": step_seconds,
        "attribute_buckets": getattr(model.config, "attribute_buckets", 0) or 0,
        "steps_timed": n_steps, "peak_rss_mb": round(peak, 1), "batch_size": model.config.batch_size,
        "dim": model.config.dim, "users": len(samples), "sample_rate": plan.sample_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["mf", "lstm", "mlp"], choices=["mf", "lstm", "mlp"])
    parser.add_argument("--recipes", nargs="+", default=["central", "store"], choices=["central", "store"],
                        help="whose DP defaults: fedrec train --dp and the main job's (central), a store's under --dp (store)")
    parser.add_argument("--data", default="beauty")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per run (step times here drift between processes: more is steadier)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="runs per (model, recipe, mode), interleaved; the median is reported")
    parser.add_argument("--main-job", type=Path, help="a finished README main-job run (its metrics.json) whose median round to report")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "MODE", "RECIPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, mode, recipe = args.worker
        print(json.dumps(worker(model, mode == "dp", args.data, args.steps, args.threads, recipe)))
        return
    rows = []
    for model in args.models:
        for recipe in args.recipes:
            for repeat in range(args.repeats):  # interleaved, so a busy spell hits both modes
                for mode in ("plain", "dp"):
                    command = [sys.executable, __file__, "--out", str(args.out), "--data", args.data, "--steps", str(args.steps),
                               "--threads", str(args.threads), "--worker", model, mode, recipe]
                    result = subprocess.run(command, capture_output=True, text=True, check=False)
                    if result.returncode != 0:
                        raise SystemExit(f"{model} {recipe} {mode} failed:\n{result.stderr[-3000:]}")
                    rows.append({**json.loads(result.stdout.strip().splitlines()[-1]), "repeat": repeat})
                    print(f"{model:5s} {recipe:7s} {mode:5s} run {repeat + 1}: {rows[-1]['step_seconds'] * 1000:8.1f} ms/step  "
                          f"peak RSS {rows[-1]['peak_rss_mb']:7.1f} MB", flush=True)
    table = []
    for model in args.models:
        for recipe in args.recipes:
            plain, dp = ([r for r in rows if r["model"] == model and r["recipe"] == recipe and r["mode"] == m] for m in ("plain", "dp"))
            ratios = [d["step_seconds"] / p["step_seconds"] for p, d in zip(plain, dp)]
            table.append({
                "model": model, "recipe": recipe, "plain_ms": round(1000 * statistics.median(r["step_seconds"] for r in plain), 1),
                "dp_ms": round(1000 * statistics.median(r["step_seconds"] for r in dp), 1),
                "time_ratio": round(statistics.median(ratios), 2), "time_ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
                "plain_rss_mb": max(r["peak_rss_mb"] for r in plain), "dp_rss_mb": max(r["peak_rss_mb"] for r in dp),
                "batch_size": dp[0]["batch_size"], "dim": dp[0]["dim"], "attribute_buckets": dp[0]["attribute_buckets"],
            })
            table[-1]["memory_ratio"] = round(table[-1]["dp_rss_mb"] / table[-1]["plain_rss_mb"], 2)
    print(f"\nmedians of {args.repeats} interleaved runs; ratio range over the pairs")
    print("| model | recipe | batch | dim | attribute buckets | plain ms/step | DP ms/step | time DP/plain (range) | plain RSS MB | DP RSS MB | memory DP/plain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        low, high = r["time_ratio_range"]
        print(f"| {r['model']} | {r['recipe']} | {r['batch_size']} | {r['dim']} | {r['attribute_buckets']} | {r['plain_ms']} | {r['dp_ms']} | "
              f"{r['time_ratio']} ({low}-{high}) | {r['plain_rss_mb']} | {r['dp_rss_mb']} | {r['memory_ratio']} |")
    document = {"data": args.data, "threads": args.threads, "machine": platform.platform(), "runs": rows, "table": table}
    if args.main_job:
        rounds = json.loads((args.main_job / "metrics.json").read_text(encoding="utf-8"))["rounds"]
        seconds = [r["wall_seconds"] for r in rounds if "wall_seconds" in r]
        document["main_job"] = {"run": str(args.main_job), "rounds": len(seconds), "median_round_s": statistics.median(seconds)}
        print(f"main job {args.main_job}: median round {statistics.median(seconds):.2f} s over {len(seconds)} rounds")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dp_cost.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\n-> {args.out / 'dp_cost.json'}")


if __name__ == "__main__":
    main()
