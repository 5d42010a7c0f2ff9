"""The README's "try it on a shop log" path, end to end and started as a user starts it:
`fedrec synth` -> `fedrec keys` -> `fedrec simulate --anonymize-key` -> `fedrec serve`
(issue 33). The shop's catalog reaches the model (attribute encoder on) and the served answers
(product names), and the release gate passes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def fedrec(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


def ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shop-trial")
    shop, key, run = folder / "shop.csv", folder / "shop.key", folder / "runs" / "shop"
    assert fedrec("synth", "--stores", "3", "--users", "900", "--out", str(shop)).returncode == 0
    assert (folder / "shop_catalog.csv").exists()
    assert fedrec("keys", "--out", str(key)).returncode == 0
    done = fedrec("simulate", "--data", str(shop), "--anonymize-key", str(key), "--rounds", "5", "--out", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def test_the_shop_path_ends_with_a_passed_gate_and_the_catalogs_attributes_in_the_model(shop_run):
    metrics = json.loads((shop_run / "metrics.json").read_text())

    assert metrics["release_gate"]["verdict"] == "passed", metrics["release_gate"]
    assert metrics["config"]["attribute_buckets"] > 0  # brand, category, price band from shop_catalog.csv
    assert (shop_run / "anonymization" / "stores_catalog.csv").exists()


def test_the_served_answers_carry_the_catalogs_product_names(shop_run, tmp_path):
    catalog = (shop_run.parents[1] / "shop_catalog.csv").read_text()
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen([exe, "serve", str(shop_run / "release"), "--port", "0"], stdout=sink,
                                  stderr=subprocess.STDOUT)
    try:
        deadline, port = time.monotonic() + 120, None
        while port is None and time.monotonic() < deadline and server.poll() is None:
            found = STARTED.search(log.read_text(errors="replace"))
            port = int(found.group(1)) if found else time.sleep(0.2)
        assert port, log.read_text()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while not ready(client) and time.monotonic() < deadline:  # the workers start after the socket
                time.sleep(0.2)
            items = client.get("/items", params={"limit": 3}).json()
            basket = [item["item_id"] for item in items["items"][:2]]
            answer = client.post("/recommend", json={"items": basket, "k": 5}).json()
            named = client.get("/items", params={"query": answer["items"][0]["name"]}).json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    names = [item["name"] for item in answer["items"]]
    assert len(names) == 5 and all(name and name in catalog for name in names)
    assert answer["items"][0]["item_id"] in [item["item_id"] for item in named["items"]]  # search by name finds it


def test_a_dp_run_on_the_shop_log_reads_the_catalogs_attributes(shop_run, tmp_path):
    folder = shop_run.parents[1]
    run = tmp_path / "dp"

    done = fedrec("simulate", "--data", str(folder / "shop.csv"), "--anonymize-key", str(folder / "shop.key"), "--dp",
                  "--target-epsilon", "8", "--rounds", "1", "--no-release-gate", "--out", str(run))

    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["config"]["attribute_buckets"] == 1024


def test_a_refused_run_leaves_nothing_behind(shop_run, tmp_path):
    folder = shop_run.parents[1]
    conflicting, refused = tmp_path / "conflicting", tmp_path / "refused"
    personal = tmp_path / "personal.csv"
    frame = pd.read_csv(folder / "shop.csv")
    frame.assign(tier=frame["customer_id"].str[-1]).to_csv(personal, index=False)  # per customer, no role

    options = fedrec("simulate", "--data", str(folder / "shop.csv"), "--anonymize-key", str(folder / "shop.key"),
                     "--model", "mf", "--dp", "distributed", "--target-epsilon", "8", "--out", str(conflicting))
    columns = fedrec("simulate", "--data", str(personal), "--anonymize-key", str(folder / "shop.key"), "--rounds", "1",
                     "--out", str(refused))

    assert options.returncode == 2 and "--dp local" in options.stderr and not conflicting.exists()
    assert "anonymiz" not in options.stderr.lower()  # refused before any row was read
    assert columns.returncode == 2 and "'tier': constant per customer" in columns.stderr and not refused.exists()
