"""`fedrec simulate`: the fedrec Flower apps on Flower's simulation engine (Ray backend),
one virtual SuperNode per client, in this process."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.checkpoints import latest_checkpoint
from fedrec.federation.checks import check_options, check_run
from fedrec.federation.client import check_federated, partitioned, shared_dataset
from fedrec.federation.console import flower_lines, ray_log_args
from fedrec.federation.ray_cluster import ray_head_address
from fedrec.federation.recipes import resolve_run
from fedrec.federation.store_floor import SIMULATED_FLOOR, StoreFloor
from fedrec.federation.store_logs import anonymize_stores
from fedrec.rundir import RunDir

log = logging.getLogger("fedrec.simulate")


def resume_configs(run_dir: Path, rounds: int | None) -> tuple[TrainConfig, FederationConfig]:
    """The configuration a run was started with, read back from its last checkpoint."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(f"--resume {run_dir}: no checkpoints there; start a new run with --out {run_dir}.")
    train, federation = wire.config_from_wire(checkpoint.config)
    changes: dict[str, Any] = {"resume": True, "run_dir": str(run_dir)}
    if rounds is not None:
        changes["rounds"] = rounds
    return train, dataclasses.replace(federation, **changes)


@dataclasses.dataclass(frozen=True)
class StoreAnonymization:
    """Each store anonymizes its own rows of the raw log before training (docs/anonymization.md)."""

    key_file: Path
    k: int = 5
    link_stores: bool = False
    schema: Path | None = None


def simulate(
    train: TrainConfig, federation: FederationConfig, *, verbose: bool = False, ray_address: str | None = None,
    anonymization: StoreAnonymization | None = None, floor: StoreFloor | None = None,
) -> dict[str, Any]:
    """Run the federation; returns the run's metrics.json document. ``verbose`` also shows
    Flower's own INFO and DEBUG lines (round banners, sampling, record dumps). ``ray_address``
    (HOST:PORT of a running Ray head) runs the clients on that cluster instead of a Ray
    started for this run on this machine. With ``anonymization``, ``train.data`` is a raw
    shop log that each store anonymizes before anything trains on it."""
    if ray_address is not None:
        ray_address = ray_head_address(ray_address)
    check_federated(train.model)
    run_dir = Path(federation.run_dir)
    if not federation.resume and latest_checkpoint(run_dir) is not None:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue it, or another --out.")
    if anonymization is not None and federation.resume:
        raise ConfigError("--resume trains on the anonymized copy the run already made; drop --anonymize-key.")
    check_options(*resolve_run(train, federation, item_attributes=False, simulated=True))  # before a file is read or written
    with _removed_on_failure(run_dir):
        if anonymization is not None:
            union = anonymize_stores(Path(train.data), run_dir, key_file=anonymization.key_file, k=anonymization.k,
                                     link_stores=anonymization.link_stores, schema=anonymization.schema)
            train = dataclasses.replace(train, data=str(union.resolve()))
        catalog = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
        train, federation = resolve_run(train, federation, item_attributes=catalog.has_item_attributes, simulated=True)
        check_run(train, federation, catalog)  # every cross-field check, before Ray starts
        _, partition = partitioned(train, federation)
        if partition.num_clients < federation.min_clients:
            raise ConfigError(
                f"min-clients={federation.min_clients} but the partition has only {partition.num_clients} clients."
            )
    # Sample from all virtual clients, not from those registered first; devices may share a SuperNode.
    supernodes = federation.device_shards or partition.num_clients
    federation = dataclasses.replace(federation, min_available=supernodes)
    import ray
    from flwr.simulation import run_simulation

    from fedrec.federation.client_app import app as client_app
    from fedrec.federation.server_app import server_app_for

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # The simulated stores' own floor, read by each store's ClientApp (never sent by the server).
    os.environ[SIMULATED_FLOOR] = json.dumps(dataclasses.asdict(floor or StoreFloor()))
    if ray_address is None:
        init_args: dict[str, Any] = {"num_cpus": os.cpu_count() or 1, "include_dashboard": False}
    else:
        if ray.is_initialized():  # Flower would reuse that connection and ignore the address
            raise ConfigError(f"--ray-address {ray_address}: this process is already connected to Ray; call ray.shutdown() first.")
        # The cluster's own resources count; Ray refuses num_cpus/resources when attaching.
        init_args = {"address": ray_address}
    log.info("simulating %d %s clients%s for %s rounds", partition.num_clients, federation.partition,
             f" on {supernodes} SuperNodes" if federation.device_shards else "", federation.rounds or "the planned")
    flower_lines(verbose=verbose)
    started_ray = not ray.is_initialized()
    try:
        if started_ray:
            _start_ray({**init_args, **ray_log_args(verbose=verbose)})
        run_simulation(
            server_app=server_app_for(train, federation),
            client_app=client_app,
            num_supernodes=supernodes,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
            verbose_logging=verbose,
        )
    finally:
        if started_ray and ray.is_initialized():
            ray.shutdown()  # leave a cluster this run joined (it keeps running), or stop the local one
    return RunDir(run_dir).read_metrics()


@contextlib.contextmanager
def _removed_on_failure(run_dir: Path):
    """A run refused before it starts leaves nothing behind: the run folder this call made
    (anonymized copies and all) is removed; a folder that was there before is left alone."""
    made = not run_dir.exists()
    try:
        yield
    except BaseException:
        if made and run_dir.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _start_ray(init_args: dict[str, Any]) -> None:
    """Start Ray (or join the cluster at ``address``) before Flower would, to say so: it takes
    seconds, and the first round then waits for each worker to load fedrec. Flower reuses a
    started Ray; its workers get this process's import path, as Flower would give them."""
    import ray

    where = f"joining the Ray cluster at {init_args['address']}" if "address" in init_args else \
        f"starting Ray ({init_args['num_cpus']} CPUs)"
    log.info("%s for the clients (1 CPU each)", where)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Ray's tip asks to stop hiding GPUs from actors with num_gpus=0; our CPU clients should not see them.
        warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
        path = os.pathsep.join([*sys.path, *filter(None, [os.environ.get("PYTHONPATH")])])
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, **init_args)
    log.info("Ray ready in %.1f s; round 1 also waits for each worker to load fedrec", time.perf_counter() - started)
