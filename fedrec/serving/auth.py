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


def key_problem(api_key: str | None, given: str | bytes | None) -> str | None:
    """Why a request with X-API-Key ``given`` is refused (None: it may pass, or no key is set)."""
    if api_key is None:
        return None
    if given is None:
        return f"missing {HEADER} header: this server requires an API key."
    given = given if isinstance(given, bytes) else given.encode("utf-8")
    if not hmac.compare_digest(given, api_key.encode("utf-8")):
        return f"wrong {HEADER}: the key does not match the server's."
    return None


def key_checker(api_key: str | None):
    """A FastAPI dependency: 401 unless the request's X-API-Key equals ``api_key`` (no-op when
    None). fedrec.serving.app's middleware checks the same before a body is read; this keeps
    the key in the OpenAPI description and checks it again."""

    def check(given: str | None = Security(_scheme)) -> None:
        problem = key_problem(api_key, given)
        if problem is not None:
            raise HTTPException(401, detail=problem, headers={"WWW-Authenticate": HEADER})

    return check
