"""Every `curl` in docs/serving.md, run as written by the system's curl against a real
`fedrec serve` (the CLI, one worker) on a small LSTM release: each exits 0 and answers the
status its trailing comment documents (``# 200``). The curls of the "API key" section go to
a second server started with --api-key-file api.key, in the folder that holds the file.
The page must also name every endpoint the app serves. Skipped where curl is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serving.conftest import running

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
DOC_ADDRESS = "localhost:8080"
KEYED_SECTION = "API key"
KEY = "doc-curl-key-3b81"
STATUS = re.compile(r"\s#\s*(\d{3})\s*$")

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (apt-get install curl)")


def doc_curls() -> list[tuple[str, str, int]]:
    """(section, command, documented status) for each curl in the page's bash blocks, a
    command's backslash-continued lines joined."""
    found, section, block = [], "", None
    for line in DOC.read_text().splitlines():
        if block is None and line.startswith("## "):
            section = line[3:].strip()
        elif block is None and line.strip() == "```bash":
            block = []
        elif block is not None and line.strip() == "```":
            for command in "\n".join(block).replace("\\\n", " ").splitlines():
                if re.search(r"\bcurl\b", command):
                    status = STATUS.search(command)
                    assert status, f"docs/serving.md: {command!r} does not end with its status (# 200)"
                    found.append((section, command, int(status.group(1))))
            block = None
        elif block is not None:
            block.append(line)
    return found


CURLS = doc_curls()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The curls' working folder: api.key, and where -o writes."""
    folder = tmp_path_factory.mktemp("doc_curls")
    (folder / "api.key").write_text(KEY + "\n")
    return folder


@pytest.fixture(scope="module")
def open_server(releases, server_logs):
    yield from running(releases("lstm"), server_logs / "doc_open.log", kind="lstm", cli=["--workers", "1"])


@pytest.fixture(scope="module")
def keyed_server(releases, server_logs, folder):
    yield from running(releases("lstm"), server_logs / "doc_keyed.log", kind="lstm",
                       cli=["--workers", "1", "--api-key-file", str(folder / "api.key")])


def run_curl(command: str, url: str, folder: Path) -> tuple[int, str, str]:
    """The command with the server's address and curl told to print the status last: (exit
    code, status, stderr)."""
    command = command.replace(DOC_ADDRESS, url.removeprefix("http://"))
    command = re.sub(r"\bcurl\b", "curl -w '\\n%{http_code}'", command, count=1)
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=folder, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.rstrip("\n").rsplit("\n", 1)[-1], done.stderr


def test_the_page_has_curls_in_every_section_that_serves():
    assert len(CURLS) >= 25
    assert {section for section, _, _ in CURLS} >= {"Recommendations", "Errors", KEYED_SECTION}
    assert {status for _, _, status in CURLS} >= {200, 400, 401, 404, 413, 415, 422}


@pytest.mark.parametrize(("section", "command", "status"), CURLS,
                         ids=[f"{section}: {command[:70]}" for section, command, _ in CURLS])
def test_each_curl_of_the_page_answers_its_documented_status(section, command, status, open_server, keyed_server, folder):
    server = keyed_server if section == KEYED_SECTION else open_server

    code, answered, stderr = run_curl(command, server.url, folder)

    assert code == 0, f"{command}\nexit {code}: {stderr}"
    assert answered == str(status), f"{command}\nanswered {answered}, the page says {status}"
    assert server.alive()


def test_the_page_names_every_endpoint_the_app_serves(open_server):
    text = DOC.read_text()
    paths = set(open_server.client.get("/openapi.json").json()["paths"]) | {"/docs", "/redoc", "/openapi.json", "/"}

    missing = {path for path in paths if f"`{path}" not in text and f" {path}`" not in text and f"GET {path}" not in text}

    assert missing == set()
