"""Releases of a tiny synthetic shop (600 customers, 3 stores), built once per session, and
real uvicorn processes serving them on free ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import fedrec
from fedrec import api
from tests.conftest import anonymized_shop_log

LOOSE_GATE = {"min_hr_gain": -1, "min_group_ratio": None, "max_arp_ratio": None, "min_coverage": 0}
SMALL = {"pop": {}, "itemknn": {}, "mf": {"epochs": 1, "threads": 1}, "lstm": {"epochs": 1, "dim": 16, "threads": 1},
         "mlp": {"epochs": 1, "dim": 16, "threads": 1}}
STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> Path:
    return anonymized_shop_log(tmp_path_factory.mktemp("serving_shop"), stores=3, users=600, seed=1)


def make_release(shop: Path, out: Path, kind: str) -> Path:
    """Train a small ``kind`` model and release it through the real audit (bounds loosened
    so a one-epoch model passes)."""
    fedrec.train(out, model=kind, data=str(shop), release_gate=False, **SMALL[kind])
    assert api.audit(out, **LOOSE_GATE)["verdict"] == "passed"
    return out / "release"


@pytest.fixture(scope="session")
def releases(shop, tmp_path_factory):
    """kind -> its release folder, trained on first use."""
    root = tmp_path_factory.mktemp("serving_runs")
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = make_release(shop, root / kind, kind)
        return made[kind]

    return get


class Server:
    """``fedrec.serving.serve`` in its own Python process, on a port the OS picked; with
    ``cli``, ``fedrec serve RELEASE --port 0 *cli`` as a user starts it."""

    def __init__(self, release: Path, log: Path, *, kind: str = "", api_key: str | None = None,
                 cli: list[str] | None = None) -> None:
        self.release, self.log, self.kind = release, log, kind
        env = {**os.environ, "SERVE_TEST_KEY": api_key or ""}
        code = ("import os, sys; from fedrec.serving import serve; "
                "serve(sys.argv[1], port=0, api_key=os.environ['SERVE_TEST_KEY'] or None)")
        command = ([sys.executable, "-m", "fedrec.cli", "serve", str(release), "--port", "0", *cli] if cli is not None
                   else [sys.executable, "-c", code, str(release)])
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self._port()}"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _port(self) -> int:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = STARTED.search(self.log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.process.poll() is None and self.client.get("/livez").status_code == 200

    def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serving_logs")


def running(release: Path, log: Path, *, kind: str = "", api_key: str | None = None, cli: list[str] | None = None):
    """A Server for a fixture to yield; stopped when the fixture ends."""
    server = Server(release, log, kind=kind, api_key=api_key, cli=cli)
    try:
        yield server
    finally:
        server.stop()
