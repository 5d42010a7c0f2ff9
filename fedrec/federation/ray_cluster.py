"""An existing Ray cluster for `fedrec simulate --ray-address`: the address is checked
before anything starts, because Ray itself would retry a wrong one for minutes in silence."""

from __future__ import annotations

import socket

from fedrec.errors import ConfigError


RAY_HEAD_FIX = "start one with `ray start --head --port PORT` (docs/deployment.md, \"An existing Ray cluster\")"


def ray_head_address(address: str, *, timeout: float = 5.0) -> str:
    """``address`` (HOST:PORT of a Ray head's GCS, as ``ray start --head --port PORT`` opens it)
    once something answers there; a ConfigError naming the fix otherwise. Never "auto": that
    joins whichever Ray instance on this machine Ray finds first."""
    text = address.strip()
    host, sep, port_text = text.rpartition(":")
    if text in ("auto", "local") or "://" in text:
        what = "a Ray Client (ray://) address" if "://" in text else f"{text!r} (it picks a Ray instance by itself)"
        raise ConfigError(f"--ray-address takes the head's HOST:PORT (e.g. 10.0.0.5:6379), not {what}; {RAY_HEAD_FIX}.")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379); {RAY_HEAD_FIX}.")
    port = int(port_text)
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(
            f"--ray-address {text}: no Ray head answers there ({err.strerror or err}); on {host.strip('[]')} "
            f"start one with `ray start --head --port {port}` (docs/deployment.md, \"An existing Ray cluster\")."
        ) from None
    refusal = _not_a_ray_head(host, port, timeout)
    if refusal is not None:
        raise ConfigError(
            f"--ray-address {text}: something answers there, but not a Ray head ({refusal}); give the port the head's "
            f"GCS listens on, the --port of `ray start --head --port PORT` (default 6379), not its dashboard or Ray Client port."
        )
    return text


def _not_a_ray_head(host: str, port: int, timeout: float) -> str | None:
    """None if a Ray GCS answers at host:port; otherwise why not. (Ray itself would retry
    connecting to a port that is no GCS for minutes, with no word to the user.)"""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=timeout
            )
        except grpc.RpcError as err:
            code = err.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED):
                return f"gRPC {code.name}"
    return None  # answered, or refused only for want of credentials: a Ray GCS
