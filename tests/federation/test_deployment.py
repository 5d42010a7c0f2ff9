"""A real deployment on this host, started the way docs/deployment.md starts it: certificates
from `fedrec certs`, `flower-superlink` with TLS and SuperNode authentication, one
`flower-supernode` per store with its own data file, and `flwr run` from an operator's config.

Every process runs in its own session (process group) and is stopped by group at teardown, so
the SuperExec, flwr-serverapp and flwr-clientapp children go too. Logs land in tmp_path/logs;
their tails are printed at teardown, which pytest shows when a test fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil
import pytest
import torch
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from conftest import write_chain_sequences
from fedrec.config import FederationConfig, TrainConfig, split_mapping

REPO = Path(__file__).resolve().parents[2]
STORES = ("store-a", "store-b")
TINY = "dim=8 batch-size=16 lr=0.01 threads=1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (logs below)")
        time.sleep(0.5)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


class Federation:
    """One SuperLink (TLS, node auth) and one SuperNode per store, all on 127.0.0.1.

    ``cert_hosts`` are the names `fedrec certs` puts in the server certificate. The SuperNodes
    connect to ``fleet_address``: the SuperLink's own address unless a test puts a proxy
    there (test_fleet_only_deployment.py)."""

    def __init__(self, root: Path, stores: tuple[str, ...] = STORES,
                 cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        self.root, self.certs, self.logs = root, root / "certs", root / "logs"
        self.stores, self.cert_hosts = stores, cert_hosts
        self.logs.mkdir()
        self.address = f"127.0.0.1:{free_port()}"
        self.fleet_address = self.address
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "FLWR_HOME": str(root / "flwr-home"),
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
        # The server's evaluation data; each store gets half its users. The shared item catalog
        # has items no store has seen, so model sizes follow the catalog, not the data.
        self.data = write_chain_sequences(root / "all.txt", n_users=60, seed=7)
        lines = self.data.read_text().splitlines()
        self.catalog = root / "catalog.txt"
        self.catalog.write_text("\n".join([*lines, "1000 31 32 33 34 35"]) + "\n")
        self.store_data = {}
        for index, store in enumerate(stores):
            (root / store).mkdir()
            self.store_data[store] = root / store / "data.txt"
            self.store_data[store].write_text("\n".join(lines[index :: len(stores)]) + "\n")

    def start(self, name: str, *command: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "w") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def cli(self, *command: str) -> subprocess.CompletedProcess:
        result = subprocess.run(command, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=300)
        with open(self.logs / "commands.log", "a") as log:
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
        return result

    def up(self) -> None:
        self.start_superlink()
        self.join_stores()

    def start_superlink(self) -> None:
        hosts = [arg for host in self.cert_hosts for arg in ("--host", host)]
        self.cli("fedrec", "certs", "--out", "certs", *hosts, "--nodes", *self.stores)
        host, port = self.address.split(":")
        self.start(
            "superlink", "flower-superlink",
            "--ssl-ca-certfile", f"{self.certs}/ca.crt", "--ssl-certfile", f"{self.certs}/server.pem",
            "--ssl-keyfile", f"{self.certs}/server.key", "--enable-supernode-auth",
            "--disable-runtime-dependency-installation", "--host", host, "--port", port,
        )
        wait_for(lambda: "Uvicorn running" in (self.logs / "superlink.log").read_text(), 120, "the SuperLink")
        (self.root / "flwr-home").mkdir(exist_ok=True)
        (self.root / "flwr-home" / "config.toml").write_text(
            f'[superlink]\ndefault = "fedrec"\n\n[superlink.fedrec]\naddress = "{self.address}"\n'
            f'root-certificates = "{self.certs}/ca.crt"\n'
        )

    def join_stores(self) -> None:
        """The operator registers each store's key, then each store starts its SuperNode."""
        for store in self.stores:
            registered = self.cli("flwr", "supernode", "register", f"{self.certs}/{store}.pub", "fedrec", "--format", "json")
            assert json.loads(registered.stdout)["success"], registered.stdout
            self.start_supernode(store, self.certs / f"{store}.key")
        wait_for(lambda: self.node_statuses() == ["online"] * len(self.stores), 180, "every SuperNode online")

    def start_supernode(self, name: str, key: Path, *, trust_ca: bool = True) -> subprocess.Popen:
        data = self.store_data.get(name, self.store_data[self.stores[0]])
        trust = ["--root-certificates", f"{self.certs}/ca.crt"] if trust_ca else []
        return self.start(
            name, "flower-supernode", *trust, "--superlink", self.fleet_address, "--port", str(free_port()),
            "--auth-supernode-private-key", str(key), "--node-config", f"data-path='{data}' client-name='{name}'",
        )

    def node_statuses(self) -> list[str]:
        listed = json.loads(self.cli("flwr", "supernode", "list", "fedrec", "--format", "json").stdout)
        return [node["status"] for node in listed.get("nodes", [])]

    def run_command(self, run_dir: Path, settings: str) -> list[str]:
        config = f"data='{self.data}' item-catalog='{self.catalog}' run-dir='{run_dir}' {TINY} {settings}"
        return ["flwr", "run", str(REPO), "fedrec", "--stream", "--run-config", config]

    def operator_run(self, run_dir: Path, settings: str, *, timeout: int) -> dict:
        """`flwr run` as the operator starts it; its output goes to logs/flwr-run.log. Returns
        metrics.json (`flwr run` exits 0 even when the ServerApp fails: the run directory is the verdict)."""
        result = subprocess.run(self.run_command(run_dir, settings), env=self.env, cwd=self.root, capture_output=True,
                                text=True, timeout=timeout)
        (self.logs / "flwr-run.log").write_text(result.stdout + result.stderr)
        return read_metrics(run_dir)

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # children that outlived their leader too
            proc.wait(timeout=30)

    def tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"===== {log.name} =====\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in sorted(self.logs.glob("*.log"))
        )


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture
def federation(tmp_path):
    yield from _running(Federation(tmp_path))


@pytest.fixture
def three_stores(tmp_path):
    yield from _running(Federation(tmp_path, ("store-a", "store-b", "store-c")))


def _running(fed: Federation, start: Callable[[Federation], None] | None = None):
    try:
        if start is not None:
            start(fed)
        yield fed
    finally:
        fed.stop()
        print(fed.tails())
        deadline = time.monotonic() + 30
        while any(group_members(p.pid) for p in fed.procs.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {name: group_members(p.pid) for name, p in fed.procs.items() if group_members(p.pid)}
        assert not left, f"processes still alive after teardown: {left}"


def read_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {"rounds": []}


def test_pyproject_run_config_lists_every_config_key():
    # `flwr run --run-config` refuses to override a key that pyproject.toml does not list.
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    fields = {name.replace("_", "-") for cls in (TrainConfig, FederationConfig) for name in cls.__dataclass_fields__}
    assert set(listed) == fields


def test_pyproject_run_config_values_are_the_config_defaults():
    # A `flwr run` with no --run-config must run what `fedrec simulate` runs by default.
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    train, federation = split_mapping(listed)
    assert train == TrainConfig()
    assert dataclasses.replace(federation, run_dir=FederationConfig().run_dir) == FederationConfig()


def test_tls_deployment_with_node_auth_runs_two_rounds(federation):
    federation.up()
    # Nodes that must not join: an unregistered key, and a node that does not trust our CA.
    federation.cli("fedrec", "certs", "--out", "other", "--nodes", "intruder")
    intruder = federation.start_supernode("intruder", federation.root / "other" / "intruder.key")
    untrusting = federation.start_supernode("untrusting", federation.certs / "store-a.key", trust_ca=False)
    run_dir = federation.root / "run"

    document = federation.operator_run(run_dir, "model='lstm' rounds=2 min-clients=2", timeout=900)
    assert document.get("complete") is True, "the run did not complete"
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert [r["failures"] for r in document["rounds"]] == [0, 0]
    assert all(0.0 <= r["hr@10"] <= 1.0 for r in document["rounds"])
    assert (run_dir / "checkpoints" / "round-0002.pt").is_file() and (run_dir / "model.pt").is_file()
    assert intruder.wait(timeout=120) != 0 and untrusting.wait(timeout=120) != 0
    assert "Failed to activate SuperNode" in (federation.logs / "intruder.log").read_text()
    assert "CERTIFICATE_VERIFY_FAILED" in (federation.logs / "untrusting.log").read_text()
    assert len(federation.node_statuses()) == 2  # only the two registered stores


def run_killing_after_round_one(fed: Federation, settings: str, victim: str) -> tuple[Path, dict]:
    """Start a `flwr run`, kill the store ``victim`` once round 1 is written, wait for the run
    to end; its run directory and metrics.json (asserted complete)."""
    fed.up()
    run_dir = fed.root / "run"
    run = fed.start("flwr-run", *fed.run_command(run_dir, settings))
    wait_for(lambda: len(read_metrics(run_dir)["rounds"]) >= 1 or run.poll() is not None, 600, "round 1")
    fed.kill(victim)
    run.wait(timeout=900)
    document = read_metrics(run_dir)
    assert document.get("complete") is True, "the run did not complete"
    return run_dir, document


def test_killing_one_supernode_mid_run_does_not_stop_the_run(federation):
    # MF keeps private user vectors on each node's own disk; one reply is enough for a round.
    run_dir, document = run_killing_after_round_one(
        federation, "model='mf' rounds=4 min-clients=1 round-timeout=20", "store-b")
    assert [r["round"] for r in document["rounds"]] == [1, 2, 3, 4]
    assert document["rounds"][0]["failures"] == 0
    # The SuperLink notices a dead node only after missed heartbeats, so the next round still
    # samples store-b; its missing (timed-out) or error reply counts as a failure.
    assert any(r["failures"] >= 1 for r in document["rounds"][1:])
    assert (federation.root / "store-a" / "client_state" / "store-a.pt").is_file()
    assert not (run_dir / "client_state").exists()  # the server's path is not the nodes' disk


def test_secure_aggregation_over_tls_survives_a_store_leaving(three_stores):
    """SecAgg+ over TLS with node auth: three stores, so the sum hides each one. Round 1 with
    all three; then one SuperNode is killed: a round it was sampled for completes through
    SecAgg+'s dropout recovery or fails cleanly, and the run carries on to the end."""
    run_dir, document = run_killing_after_round_one(
        three_stores, "model='lstm' rounds=2 secagg=true round-timeout=20", "store-c")
    rounds = document["rounds"]
    assert [r["round"] for r in rounds] == [1, 2], rounds
    assert rounds[0]["failures"] == 0 and rounds[0]["secagg_clipped"] == 0, rounds
    assert 0 < rounds[0]["secagg_error_bound"] < 1e-4, rounds  # max_weight is the largest store's, asked first
    assert rounds[1]["failures"] >= 1, rounds  # store-c: its missing replies (recovered by SecAgg+), or a skipped round
    assert (run_dir / "checkpoints" / "round-0002.pt").is_file()
    # The server unmasks with the stores' mask generator (fedrec.federation.secagg_masks on both ends): a mismatch
    # would leave noise uniform over +-secagg-clip (8) in every parameter, not a model.
    state = torch.load(run_dir / "checkpoints" / "round-0001.pt", weights_only=True)["state"]
    values = torch.cat([tensor.flatten().float() for tensor in state.values()])
    assert torch.isfinite(values).all() and float((values.abs() > 4).float().mean()) < 0.01
