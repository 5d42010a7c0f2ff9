"""``fedrec train``: load, split, fit (model chosen on validation), test, write the run dir."""

from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedrec.config import TrainConfig
from fedrec.data import leave_one_out, load_dataset
from fedrec.evaluation import evaluate, tested_population
from fedrec.models import create_model, model_class
from fedrec.privacy.ledger import ClientLedger, save_run_ledger
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.popularity_prior import save_released_prior
from fedrec.privacy.report import write_privacy_report
from fedrec.rundir import RunDir, write_json
from fedrec.training.fitting import fit_model

log = logging.getLogger("fedrec.train")

PROTOCOL = "full-ranking-leave-one-out"


def train_centrally(config: TrainConfig, out: Path) -> dict[str, Any]:
    """Train ``config.model`` on all of ``config.data``; writes ``out/metrics.json`` and ``out/model.pt``."""
    started = time.perf_counter()
    mode = privacy_mode(config.dp)
    mode.check_centralised(config)  # before any data is read
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    data = load_dataset(config.data, min_interactions=config.min_interactions, short_users=config.short_users)
    split = leave_one_out(data)
    _, private = mode.model_recipe(federated=False)
    config = model_class(config.model).resolve_config(config, private=private, item_attributes=data.has_item_attributes)
    model = create_model(config.model, config, n_users=data.n_users, n_items=data.n_items)
    model.use_item_attributes(data)
    log.info("training %s on %s (%d users, %d items)", config.model, data.source, data.n_users, data.n_items)
    fit, ledger = fit_model(model, split)
    valid = evaluate(model, split.valid, mask_history=config.mask_history)
    test = evaluate(model, split.test, mask_history=config.mask_history)
    wall = time.perf_counter() - started
    log.info("test HR@10 %.4f NDCG@10 %.4f (valid HR@10 %.4f) in %.1f s", test["hr@10"], test["ndcg@10"], valid["hr@10"], wall)
    document = {
        "model": config.model,
        "data": config.data,
        "protocol": PROTOCOL,
        "metrics": test,
        "test_population": {"users": len(split.test.users), "who": tested_population(), "by": "fedrec train's test"},
        "wall_seconds": round(wall, 3),
        "config": model.config.to_dict(),
        "validation_metrics": valid,
        "training": {k: v for k, v in asdict(fit).items() if k != "released_popularity"},  # that is privacy/
        "data_stats": data.stats(),
        "peak_rss_mb": peak_rss_mb(),
    }
    out.mkdir(parents=True, exist_ok=True)
    if ledger is not None:
        document["privacy"] = save_privacy(out, ledger)
    if fit.released_popularity is not None:
        save_released_prior(out, fit.released_popularity)
    model.save(RunDir(out).model)
    write_json(RunDir(out).metrics, document)
    write_privacy_report(out)
    return document


def save_privacy(out: Path, ledger: ClientLedger) -> dict[str, float]:
    """The run ledger of a DP model, and the summary metrics.json carries."""
    save_run_ledger(out, {ledger.client: ledger})
    return {"epsilon": ledger.epsilon, "delta": ledger.delta, "noise_multiplier": ledger.history[-1][0]}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)
