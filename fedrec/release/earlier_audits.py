"""A run's earlier audits are kept, never overwritten.

DIR/audit/ holds the latest audit (audit.json, audit.md, its pictures): what ``fedrec release
--override-reason`` and metrics.json's ``release_gate`` name. A new audit of the same run (the
release gate at the end of a resumed run, or ``fedrec audit DIR`` after the gate) first moves
the one it replaces, page and pictures with it, to DIR/audit/earlier/<n>/ (n = 1, 2, ... in
the order they were replaced), and records under ``replaces`` what that one said and where
it is. So the audit a release was judged on survives a later audit that measured otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from fedrec.rundir import RunDir

log = logging.getLogger("fedrec.audit")

AUDIT_JSON, AUDIT_MD = "audit.json", "audit.md"
EARLIER = "earlier"  # DIR/audit/earlier/<n>/


def keep_earlier(run: RunDir) -> dict[str, Any] | None:
    """Move the audit now in DIR/audit/ to DIR/audit/earlier/<n>/ and return what the new
    audit records under ``replaces``; None when there is none. The files are copied into a
    staging folder renamed into place, then the page and pictures are removed (audit.json
    stays until the new one replaces it in one rename): a crash leaves the earlier audit in
    place or kept, never lost."""
    current = run.audit / AUDIT_JSON
    if not current.exists():
        return None
    earlier = json.loads(current.read_text(encoding="utf-8"))
    folder = run.audit / EARLIER
    folder.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=0)
    files = [current, *(p for p in (run.audit / AUDIT_MD,) if p.exists()), *sorted(run.audit.glob("*.png"))]
    staging = folder / f".{number}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for path in files:
        shutil.copy2(path, staging / path.name)
    kept = staging.rename(folder / str(number))
    for path in files[1:]:
        path.unlink()
    utility = earlier.get("utility") or {}
    k = utility.get("k", 10)
    replaced = {"kept_in": str((kept / AUDIT_JSON).relative_to(run.root)), "verdict": earlier.get("verdict"),
                "protocol": earlier.get("protocol"), "k": k, "hr": utility.get(f"hr@{k}"), "users": utility.get("users"),
                "population": utility.get("population"), "model_sha256": earlier.get("model_sha256")}
    log.warning("audit: this audit replaces %s (%s, test HR@%s %s on %s test users); that one is kept in %s",
                current, replaced["verdict"], k, _figure(replaced["hr"]), replaced["users"], kept)
    return replaced


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def earlier_audits(run: RunDir) -> list[Path]:
    """The audit.json of every audit this run's later audits replaced, oldest first."""
    folder = Path(run.audit) / EARLIER
    if not folder.is_dir():
        return []
    return [p / AUDIT_JSON for p in sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))]
