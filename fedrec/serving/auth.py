"""The optional API key: requests to the data endpoints carry it in ``X-API-Key``; health
checks and metrics stay open. Compared in constant time; never logged."""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader

from fedrec.errors import ConfigError

HEADER = "X-API-Key"

_scheme = APIKeyHeader(name=HEADER, auto_error=False, description="the key the server was started with (--api-key-file)")


def read_api_key_file(path: str | Path) -> str:
    """The key in ``path`` (surrounding whitespace dropped); refuses a missing or empty file."""
    try:
        key = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the API key file ({err.strerror}); give a file holding the key.") from None
    if not key:
        raise ConfigError(f"{path}: the API key file is empty; write the key into it (e.g. `openssl rand -hex 32 > {path}`).")
    return key


def key_checker(api_key: str | None):
    """A FastAPI dependency: 401 unless the request's X-API-Key equals ``api_key`` (no-op when None)."""
    expected = None if api_key is None else api_key.encode("utf-8")

    def check(given: str | None = Security(_scheme)) -> None:
        if expected is None:
            return
        if given is None:
            raise HTTPException(401, detail=f"missing {HEADER} header: this server requires an API key.",
                                headers={"WWW-Authenticate": HEADER})
        if not hmac.compare_digest(given.encode("utf-8"), expected):
            raise HTTPException(401, detail=f"wrong {HEADER}: the key does not match the server's.",
                                headers={"WWW-Authenticate": HEADER})

    return check
