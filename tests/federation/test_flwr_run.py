"""`flwr run .` on a local simulation connection: the path Flower users take."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_listeners(ports: list[int]) -> list[int]:
    """Kill the detached local SuperLink (and its children) that `flwr run` leaves behind."""
    stopped = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports and conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                family = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in family:
                p.kill()
            psutil.wait_procs(family, timeout=30)
            stopped.extend(p.pid for p in family)
    return stopped


def test_flwr_run_local_simulation_uses_the_pyproject_apps_and_run_config(chain_file, tmp_path):
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = ":local:"\noptions.num-supernodes = 2\n'
    )
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(ports[0]),
        "FLWR_LOCAL_CONTROL_API_PORT": str(ports[1]),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    run_dir = tmp_path / "run"
    run_config = (
        f"model='lstm' data='{chain_file}' num-clients=2 rounds=2 dim=8 batch-size=16 lr=0.01 "
        f"threads=1 run-dir='{run_dir}'"
    )
    try:
        result = subprocess.run(
            ["flwr", "run", str(REPO), "local", "--stream", "--run-config", run_config],
            env=env, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        document = json.loads((run_dir / "metrics.json").read_text())
        assert document["complete"] is True
        assert [r["round"] for r in document["rounds"]] == [1, 2]
        assert document["config"]["dim"] == 8  # the --run-config override reached the ServerApp
        # The release gate ran in the ServerApp: its verdict in the log, in audit/ and metrics.json.
        verdict = json.loads((run_dir / "audit" / "audit.json").read_text())["verdict"]
        assert document["release_gate"]["verdict"] == verdict
        assert f"release gate on round {document['reported_round']}: {verdict}" in result.stdout + result.stderr
        assert (run_dir / "release").exists() == (verdict == "passed")
    finally:
        stopped = stop_listeners(ports)
        assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in stopped)
