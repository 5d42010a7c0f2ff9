"""Releasing a trained model: the audit and its gate (issue 16), later the release
directory and model card. Reads finished run directories; never changes a run's model.

    audit_run      fedrec audit DIR: one evaluation pass, every audit, the gate verdict;
                   its two steps (audit_sums, finish_audits) are what a federation splits
                   between clients and server, and write_audit writes either's document
    audit_report   audit.md, the human-readable page of audit.json
"""

from fedrec.release.audit_run import audit_run, audit_sums, finish_audits, popularity_ranks, write_audit

__all__ = ["audit_run", "audit_sums", "finish_audits", "popularity_ranks", "write_audit"]
