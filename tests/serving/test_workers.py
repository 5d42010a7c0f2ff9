"""`fedrec serve --workers 2` as a user starts it: two worker processes answer, both need the
API key (given as a file), and both swap in a new release by themselves when the folder is
replaced (a POST /admin/reload would reach only one of them)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import STARTED
from tests.serving.test_admin import replace_release

KEY = "workers-key-81f3"


@pytest.fixture(scope="module")
def folder(releases, tmp_path_factory) -> Path:
    releases("mf")  # trained before the server starts
    return shutil.copytree(releases("itemknn"), tmp_path_factory.mktemp("workers_run") / "release")


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    key_file = root / "api.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    log = root / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "fedrec.cli", "serve", str(folder), "--port", "0", "--workers", "2",
                                    "--api-key-file", str(key_file)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (found := STARTED.search(log.read_text(errors="replace"))):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{found.group(1)}"
        while len(ready_workers(url, tries=40)) < 2:  # the port listens once the workers have started
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready_workers(url: str, *, tries: int) -> dict[int, str]:
    """worker pid -> the model it serves, from /readyz on fresh connections (a kept-alive
    connection would stay with one worker)."""
    seen: dict[int, str] = {}
    for _ in range(tries):
        try:
            answer = httpx.get(url + "/readyz")
        except httpx.ConnectError:
            continue
        if answer.status_code == 200:
            seen[answer.json()["worker_pid"]] = answer.json()["model"]
    return seen


def test_two_workers_answer_and_both_need_the_key(server):
    url, log = server
    workers = ready_workers(url, tries=40)

    assert len(workers) == 2 and set(workers.values()) == {"itemknn"}
    for _ in range(10):
        assert httpx.post(url + "/recommend", json={"items": ["1"], "k": 3}).status_code == 401
        assert httpx.post(url + "/recommend", json={"items": ["1"], "k": 3}, headers={"X-API-Key": KEY}).status_code == 200
    assert KEY not in log.read_text()
    for pid in workers:  # the key reaches the workers as a file's path, never as a value in their environment
        assert KEY.encode() not in Path(f"/proc/{pid}/environ").read_bytes()


def test_each_worker_swaps_in_a_new_release_by_itself(server, folder, releases):
    url, _ = server
    replace_release(folder, releases("mf"))

    deadline = time.monotonic() + 60
    while (workers := ready_workers(url, tries=20)) and not (len(workers) == 2 and set(workers.values()) == {"mf"}):
        assert time.monotonic() < deadline, f"after 60 s the workers serve {workers}"
        time.sleep(0.5)
    answers = [httpx.post(url + "/recommend", json={"items": ["1", "4"], "k": 5}, headers={"X-API-Key": KEY}) for _ in range(10)]
    assert {a.status_code for a in answers} == {200} and {a.json()["model"] for a in answers} == {"mf"}
    assert re.search(r"reloaded: now serving the mf release", server[1].read_text())


def test_a_broken_release_is_refused_by_each_worker_once_and_the_old_one_keeps_serving(server, folder, releases):
    url, log = server
    serving = ready_workers(url, tries=20)
    replace_release(folder, releases("itemknn"), tamper=True)

    deadline = time.monotonic() + 60
    while log.read_text().count("reload refused") < 2:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    time.sleep(3 * 2.0)  # three more watch periods: a refused folder is not tried again

    assert log.read_text().count("reload refused") == 2
    assert set(ready_workers(url, tries=20).values()) == set(serving.values())
    assert httpx.post(url + "/recommend", json={"items": ["1"], "k": 3}, headers={"X-API-Key": KEY}).status_code == 200
