"""The empirical privacy audit (`fedrec privacy-audit`): attacks on a finished simulated run,
the way a curious server (item-set leakage from the updates it receives) or an outsider with
the released model (membership inference) would run them, and the re-identification risk of
the anonymized data. It sits above the federation: it replays a round with the clients' own code.
"""

from fedrec.privacy_audit.audit import audit_privacy
from fedrec.privacy_audit.render import summary_lines

__all__ = ["audit_privacy", "summary_lines"]
