"""One federated round again, as the stores computed it, for the item-leakage attack.

A curious server keeps what stores send. The audit rebuilds that from the run's own files:
the global model of checkpoint r - 1 (with the server state the round started from, such as
Mime's moments), each simulated store's data as the simulation cut it (hold-out included),
and each store's private state, copied to a scratch folder so that nothing of the run, its
privacy ledgers above all, is read back changed. Each store's update comes from the same
library call its ClientApp makes (``fedrec.federation.client``), so it is the update it sent,
up to the DP noise's draw and, for MF, user vectors saved after round r rather than r - 1.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import leave_one_out
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.checkpoints import checkpoint_path, latest_checkpoint, load_checkpoint
from fedrec.federation.client import distributed_round, locate_site, partitioned, private_customers, train_client
from fedrec.federation.distributed_step import plan_for_stores
from fedrec.federation.mime import MIME
from fedrec.federation.scaffold import SCAFFOLD
from fedrec.privacy.distributed_dp import DistributedPlan
from fedrec.privacy.budget import LEDGER_SUFFIX
from fedrec.privacy.modes import privacy_mode
from fedrec.rundir import RunDir

CONTROL_PREFIX = {MIME: "mime", SCAFFOLD: "control"}  # where the checkpoint keeps the state sent with the model


@dataclass(frozen=True)
class StoreUpdate:
    name: str
    change: dict[str, torch.Tensor]  # what left the store, as a change: delta of the model, or the noise share
    weight: float  # its weight in the server's sum
    item_buyers: np.ndarray  # (n_items + 1,) customers of the store with the item in their training data


@dataclass(frozen=True)
class ReplayedRound:
    round: int
    train: TrainConfig
    federation: FederationConfig
    global_state: dict[str, torch.Tensor]
    stores: list[StoreUpdate]
    plan: DistributedPlan | None

    @property
    def n_items(self) -> int:
        return int(self.stores[0].item_buyers.size - 1)


def replay_round(run_dir: Path, round_number: int | None = None) -> ReplayedRound:
    """Every store's update in round ``round_number`` (default: the run's last round)."""
    last = latest_checkpoint(run_dir)
    if last is None:
        raise ConfigError(f"{run_dir} has no checkpoints; the leakage audit replays a round of a federated run (fedrec simulate).")
    chosen = last.round if round_number is None else round_number
    if not 2 <= chosen <= last.round:
        raise ConfigError(f"--round {chosen}: the audit replays round r from checkpoint r - 1, so r must lie in "
                          f"2..{last.round} for this run (it has {last.round} rounds).")
    if not checkpoint_path(run_dir, chosen - 1).is_file():
        raise ConfigError(f"--round {chosen}: round {chosen - 1}'s checkpoint was not kept (a run keeps the last "
                          "--keep-checkpoints rounds' and its reported round's); audit a later round, or rerun with "
                          "--keep-checkpoints 0 to keep every round's.")
    before = load_checkpoint(checkpoint_path(run_dir, chosen - 1))
    train, federation = wire.config_from_wire(before.config)
    _, partition = partitioned(train, federation)
    control = _control(before.server_optimizer, federation)
    kept = Path(federation.state_dir).expanduser() if federation.state_dir else RunDir(run_dir).client_state
    with tempfile.TemporaryDirectory(prefix="fedrec-audit-replay-") as scratch:
        _copy_private_state(kept, Path(scratch))
        sites = [locate_site({wire.NODE_PARTITION_ID: i, wire.NODE_NUM_PARTITIONS: partition.num_clients}, train, federation, scratch)
                 for i in range(partition.num_clients)]
        plan = plan_for_stores(train, federation, [private_customers(site, train) for site in sites]) if privacy_mode(train.dp).joint_dp_sgd else None
        stores = [_store_update(site, train, federation, before.state, chosen, control, plan) for site in sites]
    return ReplayedRound(chosen, train, federation, before.state, stores, plan)


def _store_update(site, train, federation, global_state, round_number, control, plan) -> StoreUpdate:
    if plan is not None:
        update = distributed_round(site, train, global_state, round_number, plan, run="privacy-audit")
        change = {key: value.float() for key, value in update.shared.items()}
    else:
        update = train_client(site, train, federation, global_state, round_number, control, run="privacy-audit")
        change = {key: update.shared[key].float() - global_state[key].float() for key in update.shared}
    buyers = np.zeros(site.data.n_items + 1, dtype=np.int64)
    for history in leave_one_out(site.data).train:
        buyers[np.unique(history)] += 1
    return StoreUpdate(site.name, change, float(update.metrics[wire.NUM_EXAMPLES]), buyers)


def _control(server_state: dict[str, torch.Tensor], federation: FederationConfig) -> dict[str, torch.Tensor] | None:
    prefix = CONTROL_PREFIX.get(federation.drift_correction)
    if prefix is None:
        return None
    return {key.split("/", 1)[1]: value for key, value in server_state.items() if key.startswith(f"{prefix}/")}


def _copy_private_state(kept: Path, scratch: Path) -> None:
    """Private state (MF user vectors, kept optimizer state, control variates), never the ledgers:
    the replay is an audit's computation, not a release, and a ledger at its cap would refuse it."""
    if not kept.is_dir():
        return
    for path in kept.iterdir():
        if path.is_file() and not path.name.endswith(LEDGER_SUFFIX):
            shutil.copy2(path, scratch / path.name)
