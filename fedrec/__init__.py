"""fedrec: privacy-preserving federated recommendation on Flower, PyTorch and Opacus.

The Python API (``fedrec.train``, ``simulate``, ``privacy_report``, ``synth``, ``make_key``,
``anonymize_log``, ``Run``) lives in ``fedrec.api``; it is loaded on first use, so importing a small
part of fedrec (its config, its errors) does not start torch and Flower.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Run", "anonymize_log", "make_key", "privacy_report", "simulate", "synth", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fedrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'fedrec' has no attribute {name!r}")
