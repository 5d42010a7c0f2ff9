"""The deployment of docs/deployment.md with the SuperLink on loopback and the stores behind
nginx (docs/nginx-fleet-only.conf, placeholders filled in): real processes on one host.

The SuperLink listens on 127.0.0.1 only, where the operator runs `flwr`; 127.0.0.2 stands for
the address the stores use, where nginx listens with TLS and forwards the Fleet API only. One
federation (two stores) serves every test of this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
from flwr.proto.control_pb2 import ListRunsRequest  # pylint: disable=E0611

from test_deployment import Federation, _running, group_members, wait_for

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "docs" / "nginx-fleet-only.conf"
STORE_HOST = "127.0.0.2"  # the address the stores use; the SuperLink is on 127.0.0.1
# Debian installs nginx in /usr/sbin, which is not on a normal user's PATH.
NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
PROTOBUF = {"content-type": "application/protobuf", "accept": "application/protobuf"}

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx): the proxy of docs/nginx-fleet-only.conf")


def free_port_on(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def render_proxy_config(fed: Federation, proxy_port: int) -> Path:
    """docs/nginx-fleet-only.conf with its placeholders filled in, as deployment.md says."""
    folder = fed.root / "nginx"
    folder.mkdir()
    values = {
        "<store-address>": STORE_HOST,
        "<proxy-port>": str(proxy_port),
        "<superlink-port>": fed.address.split(":")[1],
        "<certs>": str(fed.certs),
        "<nginx-dir>": str(folder),
    }
    text = TEMPLATE.read_text()
    for placeholder, value in values.items():
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    config = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert not re.search(r"<[a-z-]+>", config), "a placeholder the test does not fill"
    (folder / "nginx.conf").write_text(text)
    return folder / "nginx.conf"


def connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
        return True
    except OSError:
        return False


def start_proxied(fed: Federation) -> None:
    """deployment.md's order: SuperLink on loopback, the proxy, then the stores through it."""
    fed.proxy_port = free_port_on(STORE_HOST)
    fed.fleet_address = f"{STORE_HOST}:{fed.proxy_port}"
    fed.start_superlink()
    config = render_proxy_config(fed, fed.proxy_port)
    fed.start("nginx", NGINX, "-c", str(config), "-g", "daemon off;")
    wait_for(lambda: connects(STORE_HOST, fed.proxy_port) or fed.procs["nginx"].poll() is not None, 60, "nginx")
    assert fed.procs["nginx"].poll() is None, (config.parent / "error.log").read_text()
    # A connection in the operator's config.toml as a store (or anyone at the stores'
    # address) would write it: the proxy's address, verified against ca.crt.
    with open(fed.root / "flwr-home" / "config.toml", "a") as toml:
        toml.write(f'\n[superlink.via-proxy]\naddress = "{fed.fleet_address}"\n'
                   f'root-certificates = "{fed.certs}/ca.crt"\n')
    fed.join_stores()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet-only")
    yield from _running(Federation(root, cert_hosts=(STORE_HOST, "127.0.0.1", "localhost")), start_proxied)


def proxy_log(fed: Federation) -> str:
    return (fed.root / "nginx" / "access.log").read_text()


def flwr_json(fed: Federation, *command: str) -> dict:
    """A `flwr` command's JSON answer; it exits 0 and says success: false on errors."""
    result = subprocess.run(["flwr", *command, "--format", "json"], env=fed.env, cwd=fed.root,
                            capture_output=True, text=True, timeout=120)
    with open(fed.logs / "commands.log", "a") as log:
        log.write(f"$ flwr {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    return json.loads(result.stdout)


def test_a_run_the_operator_starts_trains_through_the_proxy(proxied):
    run_dir = proxied.root / "run"
    document = proxied.operator_run(run_dir, "model='lstm' rounds=1 min-clients=2", timeout=600)
    assert document.get("complete") is True, "the run did not complete"
    assert [(r["round"], r["failures"]) for r in document["rounds"]] == [(1, 0)]
    assert (run_dir / "model.pt").is_file()
    # Both stores' replies came through nginx: they pushed their messages and objects to it.
    log = proxy_log(proxied)
    assert len(re.findall(r'"POST /v1/fleet/push-messages HTTP/1.1" 200', log)) >= 2
    assert re.search(r'"POST /v1/fleet/push-object HTTP/1.1" 200', log)


def test_the_control_api_is_refused_at_the_stores_address(proxied):
    # `flwr ls` and `flwr supernode register` pointed at the proxy are refused; the same
    # commands on the SuperLink's loopback address (the operator) are answered.
    assert flwr_json(proxied, "ls", "fedrec")["success"] is True
    refused = flwr_json(proxied, "ls", "via-proxy")
    assert refused["success"] is False and "404" in refused["error-message"], refused
    proxied.cli("fedrec", "certs", "--out", "other", "--nodes", "outsider")
    registered = flwr_json(proxied, "supernode", "register", str(proxied.root / "other" / "outsider.pub"), "via-proxy")
    assert registered["success"] is False and "404" in registered["error-message"], registered
    assert len(flwr_json(proxied, "supernode", "list", "fedrec")["nodes"]) == 2

    # The same HTTPS request (`flwr ls`'s ListRuns) to both addresses, with the CA the stores have.
    verify = ssl.create_default_context(cafile=str(proxied.certs / "ca.crt"))
    body = ListRunsRequest().SerializeToString()
    with httpx.Client(verify=verify, timeout=30) as client:
        direct = client.post(f"https://{proxied.address}/v1/control/list-runs", content=body, headers=PROTOBUF)
        assert direct.status_code == 200, direct.text
        for path in ("/v1/control/list-runs", "/v1/control/register-node", "/v1/runtime/get-run", "/docs",
                     "/openapi.json", "/v1/fleet/../control/list-runs", "/v1/fleet/%2e%2e/control/list-runs"):
            answer = client.post(f"https://{proxied.fleet_address}{path}", content=body, headers=PROTOBUF)
            assert answer.status_code in (403, 404), (path, answer.status_code)
        assert client.get(f"https://{proxied.fleet_address}/health").status_code == 200  # forwarded


def test_the_superlink_listens_on_loopback_only(proxied):
    port = int(proxied.address.split(":")[1])
    assert connects("127.0.0.1", port)
    assert not connects(STORE_HOST, port)
    # Nor does the SuperLink (or its SuperExec and ServerApp processes) listen anywhere else.
    listening = set()
    for pid in group_members(proxied.procs["superlink"].pid):
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        listening |= {c.laddr for c in connections if c.status == psutil.CONN_LISTEN}
    assert listening and {address.ip for address in listening} == {"127.0.0.1"}, listening


def test_a_store_the_operator_did_not_register_is_refused_through_the_proxy(proxied):
    proxied.cli("fedrec", "certs", "--out", "intruder-certs", "--nodes", "intruder")
    intruder = proxied.start_supernode("intruder", proxied.root / "intruder-certs" / "intruder.key")
    untrusting = proxied.start_supernode("untrusting", proxied.certs / "store-a.key", trust_ca=False)
    assert intruder.wait(timeout=120) != 0 and untrusting.wait(timeout=120) != 0
    assert "Failed to activate SuperNode" in (proxied.logs / "intruder.log").read_text()
    assert "CERTIFICATE_VERIFY_FAILED" in (proxied.logs / "untrusting.log").read_text()
    # The refusal is the SuperLink's (node auth), passed back through the proxy.
    assert re.search(r'"POST /v1/fleet/activate-node HTTP/1.1" 412', proxy_log(proxied))
    assert len(flwr_json(proxied, "supernode", "list", "fedrec")["nodes"]) == 2
