"""What a federated run leaves behind for its readers: the metrics.json document (with the
round it reports and why) and model.pt, the global model of that round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedrec.config import FederationConfig, TrainConfig
from fedrec.federation.checkpoints import checkpoint_path, load_checkpoint
from fedrec.federation.client import shared_dataset
from fedrec.models import create_model
from fedrec.rundir import RunDir
from fedrec.training.central import PROTOCOL, peak_rss_mb


def reported_round(train: TrainConfig, federation: FederationConfig, history: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The round whose model and metrics a run reports, and how it was chosen.

    Under DP (client or server side) it is the last round: picking a round by held-out
    users' validation HR@10 would be a data-dependent release the accounting does not
    cover. Validation is still recorded per round; it picks nothing.
    """
    if not history:
        return None, "none"
    if train.dp or federation.central_dp:
        return history[-1], "last round (under DP validation picks nothing)"
    scored = [r for r in history if "valid_hr@10" in r]
    if not scored:
        return history[-1], "last round (no server-side validation)"
    return max(scored, key=lambda r: r["valid_hr@10"]), "best validation HR@10"


def metrics_document(train: TrainConfig, federation: FederationConfig, history: list[dict[str, Any]], wall: float, *, complete: bool) -> dict[str, Any]:
    chosen, selection = reported_round(train, federation, history)
    return {
        "model": train.model,
        "data": train.data,
        "protocol": PROTOCOL,
        "metrics": (chosen or {}).get("metrics") or (chosen or {}).get("client_metrics", {}),
        "wall_seconds": round(wall, 3),
        "config": {**train.to_dict(), **{f"federation.{k}": v for k, v in federation.to_dict().items()}},
        "federation": federation.to_dict(),
        "reported_round": chosen["round"] if chosen else None,
        "round_selection": selection,
        "rounds": history,
        "complete": complete,
        "peak_rss_mb": peak_rss_mb(),
    }


def save_release_candidate(run_dir: Path, train: TrainConfig, federation: FederationConfig, document: dict[str, Any]) -> None:
    """model.pt: the global model of the reported round (the last one under DP)."""
    if document["reported_round"] is None:
        return
    checkpoint = load_checkpoint(checkpoint_path(run_dir, document["reported_round"]))
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)  # item ids = catalog
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.load_partial_state(checkpoint.state)
    model.save(RunDir(run_dir).model)
