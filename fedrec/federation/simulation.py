"""`fedrec simulate`: the fedrec Flower apps on Flower's simulation engine (Ray backend),
one virtual SuperNode per client, in this process."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.checkpoints import latest_checkpoint
from fedrec.federation.checks import check_options, check_run
from fedrec.federation.client import check_federated, partitioned, shared_dataset
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
        log.info("clients run on the Ray cluster at %s (1 CPU each)", ray_address)
    log.info("simulating %d %s clients%s for %s rounds", partition.num_clients, federation.partition,
             f" on {supernodes} SuperNodes" if federation.device_shards else "", federation.rounds or "the planned")
    _flower_console(verbose=verbose)
    started_ray = not ray.is_initialized()
    try:
        with warnings.catch_warnings():
            # Ray's tip asks to stop hiding GPUs from actors with num_gpus=0; our CPU clients should not see them.
            warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
            run_simulation(
                server_app=server_app_for(train, federation),
                client_app=client_app,
                num_supernodes=supernodes,
                backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": init_args},
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


def _flower_console(*, verbose: bool) -> None:
    """Each Flower line said once, and only its warnings unless ``verbose``.

    Flower's logger has its own console handler and also propagates to the root logger,
    where Opacus' import-time ``logging.basicConfig`` put a second one: every Flower line
    came out twice, DEBUG ones included. Flower's INFO lines repeat what fedrec's round line
    says. Its notice that ``run_simulation`` is deprecated concerns how fedrec starts the
    engine, nothing a user can act on.
    """
    from flwr.common.logger import FLOWER_LOGGER, set_logger_propagation, update_console_handler

    set_logger_propagation(FLOWER_LOGGER, False)
    if verbose:  # run_simulation(verbose_logging=True) shows Flower's DEBUG, with timestamps
        FLOWER_LOGGER.removeFilter(_not_the_engine_notice)
    else:
        update_console_handler(level=logging.WARNING)
        FLOWER_LOGGER.addFilter(_not_the_engine_notice)  # (adding it again is a no-op)


def _not_the_engine_notice(record: logging.LogRecord) -> bool:
    """Flower notices about how fedrec drives it, not about the user's run: the simulation
    entry point's deprecation, and "federated evaluation will be skipped" when the server
    evaluates instead (fedrec's recipes choose one or the other)."""
    message = record.getMessage()
    return "`run_simulation` function is deprecated" not in message and "Federated evaluation will be skipped" not in message
