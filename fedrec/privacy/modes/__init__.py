"""Privacy modes, found by name as models are (``--dp MODE``; docs/privacy.md, "Privacy modes").

Adding a mode is one file in this package and one ``register_mode`` line below (or a call from
elsewhere, as the tests register a test-only mode). Code outside this package asks the mode
object (``privacy_mode(train.dp)``) and never imports a concrete mode (.importlinter).
"""

from __future__ import annotations

from fedrec.errors import ConfigError
from fedrec.privacy.modes.base import PrivacyMode
from fedrec.privacy.modes.central import Central
from fedrec.privacy.modes.distributed import Distributed
from fedrec.privacy.modes.local import Local
from fedrec.privacy.modes.off import Off

_MODES: dict[str, PrivacyMode] = {}


def register_mode(mode: type[PrivacyMode]) -> None:
    """Make ``--dp <mode.name>`` known; a name is registered once."""
    if mode.name in _MODES and type(_MODES[mode.name]) is not mode:
        raise ValueError(f"privacy mode {mode.name!r} is already registered ({type(_MODES[mode.name]).__name__}).")
    _MODES[mode.name] = mode()


def privacy_mode(name: str | bool | None) -> PrivacyMode:
    """The mode ``--dp NAME`` names (a config written before modes had names: True = local)."""
    key = {True: "local", False: "off", None: "off"}.get(name, name) if isinstance(name, (bool, type(None))) else str(name)
    if key not in _MODES:
        raise ConfigError(f"dp={name!r} is not a privacy mode; use one of {', '.join(_MODES)}.")
    return _MODES[key]


def mode_names() -> tuple[str, ...]:
    return tuple(_MODES)


for _mode in (Off, Local, Central, Distributed):
    register_mode(_mode)
BUILT_IN = mode_names()  # the library's own modes (the tests register more)

__all__ = ["BUILT_IN", "PrivacyMode", "mode_names", "privacy_mode", "register_mode"]
