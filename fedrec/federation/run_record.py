"""What a federated run leaves behind for its readers: the metrics.json document (with the
round it reports and why) and model.pt, the global model of that round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedrec.config import FederationConfig, TrainConfig
from fedrec.evaluation import tested_population
from fedrec.federation.checkpoints import checkpoint_path, load_checkpoint
from fedrec.federation.client import shared_dataset
from fedrec.models import create_model
from fedrec.privacy.modes import privacy_mode
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
    if privacy_mode(train.dp).private:
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
        "test_population": reported_population(federation, chosen),
        "rounds": history,
        "complete": complete,
        "peak_rss_mb": peak_rss_mb(),
    }


def reported_population(federation: FederationConfig, chosen: dict[str, Any] | None) -> dict[str, Any]:
    """Whom the reported test metrics cover: {"users": count (None: not known to the server),
    "who": words that follow the count, "by": which evaluation}; the audit uses the same words."""
    if chosen is not None and chosen.get("test_users") is not None:
        users, eligible = int(chosen["test_users"]), int(chosen.get("eligible_test_users") or chosen["test_users"])
        return {"users": users, "who": tested_population(holdout=federation.audit_holdout,
                                                          sampled_from=eligible if eligible > users else None),
                "by": f"the server's evaluation of round {chosen['round']}"}
    return {"users": None, "who": tested_population(holdout=federation.audit_holdout),
            "by": "each store's evaluation of its own test users (no server-side evaluation)"}


def save_release_candidate(run_dir: Path, train: TrainConfig, federation: FederationConfig, document: dict[str, Any]) -> None:
    """model.pt: the global model of the reported round (the last one under DP)."""
    if document["reported_round"] is None:
        return
    checkpoint = load_checkpoint(checkpoint_path(run_dir, document["reported_round"]))
    data = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)  # item ids = catalog
    model = create_model(train.model, train, n_users=0, n_items=data.n_items)
    model.load_partial_state(checkpoint.state)
    model.save(RunDir(run_dir).model)
