"""Releasing a trained model: the audit and its gate (issue 16), later the release
directory and model card. Reads finished run directories; never changes a run's model.

    audit_run      fedrec audit DIR: one evaluation pass, every audit, the gate verdict
    audit_report   audit.md, the human-readable page of audit.json
"""

from fedrec.release.audit_run import audit_run, popularity_ranks

__all__ = ["audit_run", "popularity_ranks"]
