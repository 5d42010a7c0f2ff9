"""Re-identification risk of the anonymized data each store trained on: a prosecutor who knows
their target's quasi-identifiers and that the target is in the store's log picks one record
of the target's class, right with probability 1 / class size (El Emam & Dankar 2008)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedrec.anonymize.report import REPORT_JSON
from fedrec.privacy.attack_metrics import prosecutor_risk
from fedrec.rundir import RunDir


def reidentification_risk(run_dir: Path) -> dict | None:
    """Worst and average prosecutor risk per store and over all stores; None when the run did
    not anonymize (no anonymization reports)."""
    reports = sorted(RunDir(run_dir).anonymization.glob(f"*/{REPORT_JSON}"))
    if not reports:
        return None
    stores, every_size = {}, []
    for path in reports:
        by_size = json.loads(path.read_text(encoding="utf-8")).get("classes", {}).get("classes_by_size")
        if not by_size:
            stores[path.parent.name] = {"note": "report made before class sizes were kept; anonymize again to score it"}
            continue
        sizes = np.repeat([int(size) for size in by_size], list(by_size.values()))
        every_size.append(sizes)
        stores[path.parent.name] = _plain(prosecutor_risk(sizes))
    overall = _plain(prosecutor_risk(np.concatenate(every_size))) if every_size else None
    return {"overall": overall, "stores": stores}


def _plain(risk: dict) -> dict:
    """JSON keys are strings: the risk thresholds become "0.2" and so on."""
    return {**risk, "records_at_risk_above": {str(k): v for k, v in risk["records_at_risk_above"].items()}}
