"""fedrec: privacy-preserving federated recommendation on Flower, PyTorch and Opacus.

The Python API (``fedrec.train``, ``simulate``, ``privacy_report``, ``synth``, ``make_key``,
``anonymize_log``, ``Run``) lives in ``fedrec.api``; it is loaded on first use, so importing a small
part of fedrec (its config, its errors) does not start torch and Flower.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# fedrec.api also has audit() and release(): not here, where fedrec.audit and fedrec.release are subpackages.
__all__ = ["Run", "anonymize_log", "draft_schema", "export", "make_key", "privacy_audit", "privacy_report", "serve",
           "simulate", "synth", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fedrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'fedrec' has no attribute {name!r}")
