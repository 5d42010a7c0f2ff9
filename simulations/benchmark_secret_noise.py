"""What secret noise costs: one draw of a model's worth of Gaussians from the secret keystream
(fedrec.privacy.secret_noise) against torch's seeded generator, and that cost beside a
measured round of a run (``--run DIR``: its metrics.json wall seconds per round; under
distributed DP every store draws once a round).

    python simulations/benchmark_secret_noise.py --out runs/bench/secret_noise.json [--run runs/main]

Prints a table and writes JSON. Timings are the median of ``--repeats`` draws on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import load_dataset
from fedrec.federation.recipes import resolve_run
from fedrec.models import create_model
from fedrec.privacy.secret_noise import Purpose, SecretNoise


def _median_seconds(draw, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        draw()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", type=Path, help="a finished --dp distributed run to compare one round with")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a simulated store has one CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("beauty")
    train, _ = resolve_run(TrainConfig(model="lstm", dp="distributed", target_epsilon=8), FederationConfig(secagg=True),
                           item_attributes=data.has_item_attributes)
    model = create_model("lstm", train, n_users=0, n_items=data.n_items)
    model.use_item_attributes(data)
    size = sum(p.numel() for p in model.private_module().parameters() if p.requires_grad)
    reference = torch.zeros(size, dtype=torch.float32)
    secret = SecretNoise.fresh()
    secret_s = _median_seconds(lambda: secret.gaussian_like(reference, 1.0, purpose=Purpose.SHARE_NOISE, round_number=1,
                                                            step=0), args.repeats)
    seeded = torch.Generator().manual_seed(0)
    torch_s = _median_seconds(lambda: torch.normal(0.0, 1.0, reference.shape, generator=seeded), args.repeats)
    result = {"coordinates": size, "secret_draw_s": secret_s, "torch_draw_s": torch_s, "threads": args.threads,
              "machine": platform.processor() or platform.machine()}
    rows = [("coordinates (LSTM, main job)", f"{size:,}"), ("secret draw (s)", f"{secret_s:.3f}"),
            ("torch seeded draw (s)", f"{torch_s:.4f}")]
    if args.run is not None:
        document = json.loads((args.run / "metrics.json").read_text())
        rounds = [r["wall_seconds"] for r in document["rounds"]]
        stores = document.get("federation", {}).get("num_clients") or 10
        cores = max(1, len(__import__("os").sched_getaffinity(0)))
        per_round = statistics.median(rounds)
        added = secret_s * stores / cores  # every store draws once a round; stores share the cores
        result.update(run=str(args.run), round_median_s=per_round, stores=stores, cores=cores,
                      noise_share_of_round=added / per_round)
        rows += [("run's median round (s)", f"{per_round:.2f}"),
                 (f"noise per round ({stores} stores / {cores} cores, s)", f"{added:.2f}"),
                 ("share of a round", f"{100 * added / per_round:.1f}%")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
