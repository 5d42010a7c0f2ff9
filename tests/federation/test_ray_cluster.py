"""`fedrec simulate --ray-address`: the clients run on a Ray cluster started beforehand.

The head is a real `ray start --head` in a private temp dir. It is stopped by its process ids,
never with `ray stop` (that kills every Ray process on the machine, other runs' included).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from fedrec.cli import main

BIN = Path(sys.executable).parent
SMALL = ["--dim", "8", "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--no-release-gate"]  # the gate: test_federated_audit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def head_processes(temp_dir: Path, pgid: int) -> list[psutil.Process]:
    """Every live process of the head: those in `ray start`'s process group (gcs_server,
    raylet, monitors), those naming its temp dir, and all their descendants (workers,
    agents: their titles, e.g. ``ray::DashboardAgent``, name no directory)."""
    roots = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getpgid(proc.pid) == pgid or str(temp_dir) in " ".join(proc.info["cmdline"] or []):
                roots[proc.pid] = proc
        except (psutil.Error, ProcessLookupError):
            continue
    family = dict(roots)
    for proc in roots.values():
        try:
            family.update({child.pid: child for child in proc.children(recursive=True)})
        except psutil.Error:
            continue
    return [p for p in family.values() if p.pid != os.getpid() and _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_head(temp_dir: Path, pgid: int) -> list[psutil.Process]:
    """SIGKILL the head's processes (SIGTERM leaves gcs_server and raylet up for seconds);
    returns any still alive after a few sweeps (there should be none)."""
    for _ in range(5):
        family = head_processes(temp_dir, pgid)
        if not family:
            return []
        for proc in family:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(family, timeout=10)
    return head_processes(temp_dir, pgid)


@pytest.fixture(scope="module")
def ray_head():
    """A one-node Ray cluster (2 CPUs) at 127.0.0.1:PORT, shared by this module's runs (each
    leaves it running, as a user's cluster would); yields (address, session logs dir)."""
    # Short: Ray's socket paths (temp dir + session_<date>_<pid>/sockets/plasma_store) must
    # stay under the 107-character limit of a Unix socket path.
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--num-cpus", "2", "--port", str(port), "--temp-dir", str(temp_dir),
         "--object-store-memory", str(100 * 1024 * 1024), "--include-dashboard=False", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    pgid = head.pid  # its own session: gcs_server, raylet and the monitors stay in this group
    try:
        output, _ = head.communicate(timeout=120)
        assert head.returncode == 0, output[-3000:]
        yield f"127.0.0.1:{port}", temp_dir / "session_latest" / "logs"
    finally:
        if head.poll() is None:
            head.kill()
            head.wait()
        left = stop_head(temp_dir, pgid)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"head processes still alive: {[p.pid for p in left]}"


def _simulate_on(address: str, *args: str) -> tuple[subprocess.Popen, str]:
    run = subprocess.Popen(
        [str(BIN / "fedrec"), "simulate", "--model", "lstm", *args, *SMALL, "--ray-address", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    return run, stderr


def test_simulate_runs_its_clients_on_an_existing_ray_cluster(ray_head, chain_file, tmp_path):
    address, logs = ray_head
    out = tmp_path / "run"
    run, stderr = _simulate_on(address, "--data", str(chain_file), "--num-clients", "2", "--rounds", "1", "--out", str(out))
    assert run.returncode == 0, stderr[-3000:]
    assert f"Ray cluster at {address}" in stderr
    document = json.loads((out / "metrics.json").read_text())
    assert document["complete"] is True
    assert [r["round"] for r in document["rounds"]] == [1]
    # The head saw the job: this run's process connected to it as a driver, and the clients
    # ran as actors in workers the head's raylet started (their logs land in the head's
    # session). Had the address been ignored, a private local Ray would hold all of these.
    names = sorted(p.name for p in logs.iterdir())
    assert any(n.startswith("python-core-driver-") and n.endswith(f"_{run.pid}.log") for n in names), names
    assert len([n for n in names if n.startswith("python-core-worker-")]) >= 2, names
    # The run left the cluster; the cluster itself keeps running for the next one.
    with socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=5):
        pass


def test_device_shards_run_on_an_existing_ray_cluster(ray_head, chain_file, tmp_path):
    """--partition user: the devices' shards are the cluster's actors, as stores are (issue 35)."""
    address, logs = ray_head
    out = tmp_path / "run"
    run, stderr = _simulate_on(address, "--data", str(chain_file), "--partition", "user", "--fraction", "0.5",
                               "--device-shards", "3", "--rounds", "2", "--out", str(out))
    assert run.returncode == 0, stderr[-3000:]
    assert f"Ray cluster at {address}" in stderr and "user clients on 3 SuperNodes" in stderr
    document = json.loads((out / "metrics.json").read_text())
    assert document["complete"] is True and [r["round"] for r in document["rounds"]] == [1, 2]
    names = sorted(p.name for p in logs.iterdir())
    assert any(n.startswith("python-core-driver-") and n.endswith(f"_{run.pid}.log") for n in names), names


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1", "is not HOST:PORT"),
    ("127.0.0.1:notaport", "is not HOST:PORT"),
    ("auto", "not 'auto'"),
    ("ray://127.0.0.1:10001", "Ray Client"),
])
def test_a_malformed_address_is_a_clear_error(address, says, chain_file, tmp_path, capsys):
    code = main(["simulate", "--model", "lstm", "--data", str(chain_file), "--rounds", "1",
                 "--out", str(tmp_path / "run"), "--ray-address", address])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and "ray start --head --port" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_no_head_at_the_address_is_a_clear_error_naming_the_fix(chain_file, tmp_path, capsys):
    port = free_port()  # nothing listens there
    code = main(["simulate", "--model", "lstm", "--data", str(chain_file), "--rounds", "1",
                 "--out", str(tmp_path / "run"), "--ray-address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no Ray head answers there" in err and f"ray start --head --port {port}" in err
    assert "Traceback" not in err


def test_a_port_where_no_ray_head_listens_is_refused_in_seconds():
    """Ray itself would retry such a port for minutes without a word."""
    from fedrec.errors import ConfigError
    from fedrec.federation.simulation import ray_head_address

    with socket.socket() as listener:  # accepts TCP connections, speaks nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        start = time.monotonic()
        with pytest.raises(ConfigError, match="not a Ray head.*ray start --head --port PORT"):
            ray_head_address(f"127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        assert time.monotonic() - start < 20
