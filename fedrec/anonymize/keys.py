"""The deployment secret that keys the pseudonyms: 32 random bytes in a file only its owner
can read.

Whoever holds the key can recompute every pseudonym from a raw customer id, so the file is
created with mode 0600, never overwritten (a new key unlinks every earlier output from
later ones), and refused when group or others can read it. The key's bytes never reach a
log, a report or an output: reports carry :func:`key_id`, a one-way tag that tells two keys
apart without revealing either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from fedrec.errors import ConfigError

KEY_BYTES = 32  # RFC 2104: an HMAC key should be at least as long as the hash output (SHA-256: 32)
_KEY_ID_MESSAGE = b"fedrec/anonymize/key-id"


def make_key(path: Path) -> Path:
    """Write a fresh key to ``path`` (mode 0600); refuse a path that already exists."""
    path = Path(path).expanduser()
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist; create it first (mkdir -p {path.parent}).")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path}: already exists; a key is never overwritten (a new key unlinks every earlier output). "
            "Pass another path, or delete the old key on purpose first."
        ) from None
    try:
        os.fchmod(descriptor, 0o600)  # the umask may have narrowed it; never widened
        os.write(descriptor, secrets.token_bytes(KEY_BYTES))
    except OSError:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)
    return path


def load_key(path: Path) -> bytes:
    """The key's bytes, after checking the file is private and of the right size."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: not a regular file. Pass the key file written by `fedrec keys --out KEYFILE`.")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path}: readable or writable by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"anyone who reads it can undo the pseudonyms. Run `chmod 600 {path}`."
            )
        key = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: key file not found. Create one with `fedrec keys --out {path}`.") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read by this user. Run as the key's owner or fix its ownership.") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{path}: holds {len(key)} bytes, a key has {KEY_BYTES}. Is this the file written by `fedrec keys`? "
            "Create a new one with `fedrec keys --out KEYFILE`."
        )
    return key


def key_id(key: bytes) -> str:
    """A short public tag of the key (HMAC of a fixed message), for reports: two outputs
    with the same tag were pseudonymised with the same key."""
    return hmac.digest(key, _KEY_ID_MESSAGE, hashlib.sha256).hex()[:12]
