"""What one federated client does, without Flower: find its data, train, evaluate.

The ClientApp only unpacks messages and calls these. A client's data is loaded and
partitioned once per process (the simulation engine reuses worker processes across
thousands of virtual clients), then sliced per call.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fedrec.audit.groupings import LENGTH_BINS, length_histogram
from fedrec.audit.popularity import interaction_counts
from fedrec.audit.sums import AuditSums
from fedrec.config import DEFAULT_STORES, SEQUENCE_MODELS, AuditConfig, FederationConfig, TrainConfig
from fedrec.data import Interactions, leave_one_out, load_dataset
from fedrec.data.catalog import align_to_catalog
from fedrec.data.holdout import split_holdout
from fedrec.data.partition import client_interactions, make_partition
from fedrec.data.partition.slicing import select_users
from fedrec.errors import ConfigError, ModelError
from fedrec.evaluation import evaluate, evaluation_pass
from fedrec.federation import wire
from fedrec.federation.mime import MIME, ClientMime
from fedrec.federation.scaffold import SCAFFOLD, ClientControl, control_file
from fedrec.federation.store_logs import anonymize_own_log
from fedrec.federation.client_state import (
    load_optimizer_state, load_private_state, optimizer_state_file, save_optimizer_state, save_private_state, state_file,
)
from fedrec.models import create_model
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.budget import ledger_file
from fedrec.privacy.distributed_dp import DistributedPlan
from fedrec.privacy.ledger import ClientLedger
from fedrec.privacy.modes import privacy_mode
from fedrec.release.audit_run import audit_sums, user_groupings
from fedrec.rundir import CLIENT_STATE
from fedrec.training.local import popularity_release, private_round, train_local_epochs
from fedrec.training.noise_share import gradient_share, prior_share

log = logging.getLogger("fedrec.client")

FEDERATED_MODELS = ("mf", "lstm", "mlp")
NEVER_FEDERATED = {"userknn": "userknn keeps every customer's history in the model, so it is a centralised baseline, never "
                              "federated or released (fedrec train --model userknn)"}


def check_federated(model: str) -> None:
    """ConfigError unless ``model`` can be trained federated, saying why not."""
    if model in NEVER_FEDERATED:
        raise ConfigError(f"--model {model}: {NEVER_FEDERATED[model]}.")
    if model not in FEDERATED_MODELS:
        raise ConfigError(f"--model {model} is not federated; use one of {', '.join(FEDERATED_MODELS)}.")


@dataclass(frozen=True)
class ClientSite:
    """One client's own users and where its private state lives."""

    name: str
    data: Interactions
    state_dir: Path | None


@functools.lru_cache(maxsize=4)
def shared_dataset(spec: str, min_interactions: int, short_users: str) -> Interactions:
    return load_dataset(spec, min_interactions=min_interactions, short_users=short_users)


def partitioned(train: TrainConfig, federation: FederationConfig):
    """(data, partition) of a run, cut once per process for the settings that shape it."""
    return _partitioned(train.data, train.min_interactions, train.short_users, federation.partition,
                        federation.num_clients, federation.alpha, train.seed)


@functools.lru_cache(maxsize=4)
def _partitioned(spec: str, min_interactions: int, short_users: str, scheme: str, num_clients: int | None,
                 alpha: float, seed: int):
    data = shared_dataset(spec, min_interactions, short_users)
    if scheme == "store" and num_clients is None and data.stores is None:
        num_clients = DEFAULT_STORES
    return data, make_partition(data, scheme, num_clients, alpha=alpha, seed=seed)


def refuse_positional_ledger(state_dir: Path, *, old: str, new: str) -> None:
    """Before stores were named by their own id, a store of a log with a store column kept its
    ledger under its position (store-0, ...): reading on under the new name would restart its
    lifetime budget, and a position need not be the same store in another run."""
    if ledger_file(state_dir, old).exists() and not ledger_file(state_dir, new).exists():
        raise ConfigError(
            f"{state_dir} holds a privacy ledger named {old} from before stores were named by their id; this store is "
            f"now {new}. Check which store that ledger belongs to and rename it to {ledger_file(state_dir, new).name} "
            "(moving it away instead restarts this store's lifetime budget, which then understates it)."
        )


def locate_site(node_config: Mapping[str, Any], train: TrainConfig, federation: FederationConfig, state_dir: str | None) -> ClientSite:
    """A deployed node names its own data file; a simulated node gets a partition id."""
    own_state = node_config.get(wire.NODE_STATE_DIR) or state_dir
    if wire.NODE_DATA_PATH in node_config or wire.NODE_RAW_DATA_PATH in node_config:
        given = str(node_config.get(wire.NODE_DATA_PATH) or node_config[wire.NODE_RAW_DATA_PATH])
        # The server's state-dir is a path on the server's host: a deployed node keeps its
        # private state on its own disk, beside its data unless it names a state-dir.
        own_state = node_config.get(wire.NODE_STATE_DIR) or str(Path(given).expanduser().resolve().parent / CLIENT_STATE)
        path = given if wire.NODE_DATA_PATH in node_config else str(_anonymized_copy(node_config, Path(own_state)))
        catalog = shared_dataset(federation.item_catalog or train.data, train.min_interactions, train.short_users)
        local = load_dataset(path, min_interactions=train.min_interactions, short_users=train.short_users)
        data = align_to_catalog(local, catalog.items, min_interactions=train.min_interactions)
        name = str(node_config.get(wire.NODE_NAME) or Path(given).stem)
    elif wire.NODE_PARTITION_ID in node_config:
        full, partition = partitioned(train, federation)
        index = int(node_config[wire.NODE_PARTITION_ID])
        expected = int(node_config.get(wire.NODE_NUM_PARTITIONS, partition.num_clients))
        if federation.device_shards and expected == federation.device_shards:  # a simulated shard of devices
            users = np.sort(np.concatenate([partition.client_users[d] for d in range(index, partition.num_clients, expected)]))
            return ClientSite(name=f"shard-{index}", data=select_users(full, users, f"{full.source} [shard {index}]"),
                              state_dir=Path(own_state) if own_state else None)
        if expected != partition.num_clients:
            raise ConfigError(
                f"the federation has {expected} nodes but the {federation.partition} partition has "
                f"{partition.num_clients} clients; start it with num-supernodes={partition.num_clients}."
            )
        data = client_interactions(full, partition, index)
        # A store keeps one name everywhere (ledger, private state, reports): its own id when the
        # log has a store column, store-<i> for the simulated ones; a device its index.
        name = partition.client_names[index] if federation.partition == "store" else f"{federation.partition}-{index}"
        if own_state and name != f"{federation.partition}-{index}":
            refuse_positional_ledger(Path(own_state), old=f"{federation.partition}-{index}", new=name)
    else:
        raise ConfigError(
            "this SuperNode has no data: start it with --node-config \"data-path='/path/to/log.csv'\" "
            "(or run it in the simulation engine, which sets partition-id)."
        )
    if federation.audit_holdout:  # these customers never train: the membership audit's non-members
        data, _ = split_holdout(data, federation.audit_holdout, train.seed)
    return ClientSite(name=name, data=data, state_dir=Path(own_state) if own_state else None)


def _anonymized_copy(node_config: Mapping[str, Any], state_dir: Path) -> Path:
    """The node's raw log anonymized on the node, with the node's own key and, when its node
    config names one, its own schema (the server never sees any of them); made once, again
    when the raw file or a setting changes."""
    if wire.NODE_KEY_PATH not in node_config:
        raise ConfigError(
            f"{wire.NODE_RAW_DATA_PATH} is a raw log to anonymize on this node, which needs its key: start the SuperNode "
            f"with --node-config \"{wire.NODE_RAW_DATA_PATH}='/path/raw.csv' {wire.NODE_KEY_PATH}='/path/store.key'\" "
            "(make the key with `fedrec keys --out /path/store.key`)."
        )
    schema = node_config.get(wire.NODE_SCHEMA_PATH)
    return anonymize_own_log(Path(str(node_config[wire.NODE_RAW_DATA_PATH])), Path(str(node_config[wire.NODE_KEY_PATH])),
                             state_dir, k=int(node_config.get(wire.NODE_K_ANONYMITY, 5)),
                             schema=None if schema is None else Path(str(schema)).expanduser())


def build_client_model(site: ClientSite, train: TrainConfig, global_state: dict[str, torch.Tensor]) -> TorchRecommender:
    check_federated(train.model)
    model = create_model(train.model, train, n_users=site.data.n_users, n_items=site.data.n_items)
    model.load_partial_state(global_state)
    if site.state_dir is not None:
        model.load_partial_state(load_private_state(state_file(site.state_dir, site.name), site.data.users.raw))
    return model


def round_config(train: TrainConfig, federation: FederationConfig, round_number: int) -> TrainConfig:
    """The client's learning rate for this round: decayed, so late rounds settle instead
    of every round restarting at the full step size."""
    if federation.client_lr_decay == 1.0 or train.lr is None:
        return train
    return dataclasses.replace(train, lr=train.lr * federation.client_lr_decay ** max(0, round_number - 1))


@dataclass(frozen=True)
class ClientUpdate:
    """What a client sends back after training: never raw data, never private state."""

    shared: dict[str, torch.Tensor]
    metrics: dict[str, float]
    ledger: ClientLedger | None  # DP runs: the client's whole privacy history so far
    control_change: dict[str, torch.Tensor] | None = None  # SCAFFOLD: how c_i moved; Mime: gradient statistics


def stepping_config(train: TrainConfig, federation: FederationConfig) -> TrainConfig:
    """The optimizer a client's model steps with: under Mime, before_step turns each gradient
    into Adam's step (weight decay included) and plain SGD at the Adam learning rate applies it."""
    return dataclasses.replace(train, optimizer="sgd", weight_decay=0.0) if federation.drift_correction == MIME else train


def train_client(site: ClientSite, train: TrainConfig, federation: FederationConfig, global_state: dict[str, torch.Tensor],
                 round_number: int, global_control: dict[str, torch.Tensor] | None = None, *, run: str = "",
                 least_noise: float = 0.0, reuse: TorchRecommender | None = None) -> ClientUpdate:
    """Local epochs on this client's train split (DP-SGD under --dp, refused below the store's
    ``least_noise``; with a drift correction, ``global_control`` is the server's SCAFFOLD c or Mime moments).
    ``reuse``: a model of the same config with nothing private, to load the global state into
    instead of building one (a shard's devices, one after another)."""
    split = leave_one_out(site.data)
    train = round_config(train, federation, round_number)
    stepping = stepping_config(train, federation)
    if reuse is not None:
        if (reuse.config.optimizer, reuse.config.lr) != (stepping.optimizer, stepping.lr):
            raise ModelError(f"a reused model steps with {reuse.config.optimizer} at lr {reuse.config.lr}, this round with "
                             f"{stepping.optimizer} at lr {stepping.lr}: build it from stepping_config(round_config(...)).")
        model = reuse
        model.load_partial_state(global_state)
    else:
        model = build_client_model(site, stepping, global_state)
    ledger, control = None, None
    if privacy_mode(train.dp).stores_add_noise:  # raises BudgetExhausted instead of training past max-epsilon
        ledger, loss = private_round(model, split, train, federation, client=site.name, state_dir=site.state_dir,
                                     round_number=round_number, run=run, least_noise=least_noise)
    else:
        kept = None
        if (federation.keep_optimizer_state or federation.drift_correction == SCAFFOLD) and site.state_dir is None:
            raise ConfigError(
                "this client has no state dir for its kept optimizer state / SCAFFOLD control variate; "
                "start the SuperNode with --node-config \"state-dir='/path/on/the/client'\"."
            )
        if federation.keep_optimizer_state:
            kept = optimizer_state_file(site.state_dir, site.name)
        if federation.drift_correction == SCAFFOLD:
            control = ClientControl(control_file(site.state_dir, site.name), global_control or {}, model.net, shared=global_state,
                                    lr=train.lr)
        elif federation.drift_correction == MIME:
            control = ClientMime(global_control or {}, model.net, shared=global_state, beta_1=federation.mime_momentum,
                                 weight_decay=train.weight_decay or 0.0)
        loss, optimizer_state = train_local_epochs(
            model, split, federation.local_epochs, round_seed=round_number, optimizer_state=load_optimizer_state(kept) if kept else None,
            before_step=control.before_step if control else None,
        )
        if kept is not None:
            save_optimizer_state(kept, optimizer_state)
    if site.state_dir is not None:
        save_private_state(state_file(site.state_dir, site.name), model.private_state(), site.data.users.raw)
    examples = training_examples(split.train, train.model)
    metrics = {wire.NUM_EXAMPLES: int(examples), wire.UNIT_WEIGHT: 1.0, wire.NUM_USERS: site.data.n_users}
    if ledger is not None:  # under DP the loss stays home: it is no part of the accounted release
        metrics[wire.EPSILON] = ledger.epsilon
    else:
        metrics[wire.TRAIN_LOSS] = float(loss)
    log.debug("%s round %d: loss %.4f on %d examples", site.name, round_number, loss, examples)
    return ClientUpdate(in_order_of(global_state, model.shareable_state()), metrics, ledger,
                        control.finish() if control else None)


def distributed_round(site: ClientSite, train: TrainConfig, global_state: dict[str, torch.Tensor], round_number: int,
                      plan: DistributedPlan, run: str) -> ClientUpdate:
    """--dp distributed: this store's clipped gradient sum plus noise share at the global model.
    Its metrics say nothing about the sampled customers (no loss, no batch size)."""
    split = leave_one_out(site.data)
    model = build_client_model(site, train, global_state)
    shares, ledger = gradient_share(model, split, plan, client=site.name, state_dir=site.state_dir, run=run,
                                    round_number=round_number)
    metrics = {wire.NUM_EXAMPLES: 1, wire.UNIT_WEIGHT: 1.0, wire.NUM_USERS: site.data.n_users, wire.EPSILON: ledger.epsilon}
    return ClientUpdate(in_order_of(global_state, shares), metrics, ledger)


def in_order_of(sent: Mapping[str, torch.Tensor], update: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``update`` with its arrays in the order the server sent them: Flower's FedAvgM pairs the
    arrays by position, and private training's layers (Opacus' DPLSTM) list an LSTM's weights
    in another order than nn.LSTM, under the same names."""
    return {**{key: update[key] for key in sent if key in update}, **update}


def private_customers(site: ClientSite, train: TrainConfig) -> int:
    """The customers DP training samples from at this store (users with a next item to learn):
    the federation's size for the accounting, as a dataset's size is in central DP-SGD."""
    model = create_model(train.model, train, n_users=site.data.n_users, n_items=site.data.n_items)
    return len(model.private_samples(leave_one_out(site.data)))


def training_examples(histories, model: str) -> int:
    """A client's averaging weight: its training interactions (next-item targets for the
    sequence models, whose first item of a history predicts nothing)."""
    return int(sum(max(0, len(h) - (1 if model in SEQUENCE_MODELS else 0)) for h in histories))


def release_popularity(site: ClientSite, train: TrainConfig, federation: FederationConfig, global_state: dict[str, torch.Tensor],
                       *, run: str = "", plan: DistributedPlan | None = None) -> tuple[np.ndarray, ClientLedger]:
    """This client's share of the DP popularity prior (noisy user-level counts; under
    distributed DP with its share of the noise), recorded in its privacy ledger before it leaves."""
    split = leave_one_out(site.data)
    model = build_client_model(site, train, global_state)
    if plan is not None:
        return prior_share(model, split, plan, client=site.name, state_dir=site.state_dir, run=run)
    return popularity_release(model, split, train, federation, client=site.name, state_dir=site.state_dir, run=run)


def evaluate_client(site: ClientSite, train: TrainConfig, global_state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Test metrics on this client's own users, with its private state (federated evaluation)."""
    split = leave_one_out(site.data)
    model = build_client_model(site, train, global_state)
    metrics = evaluate(model, split.test, mask_history=train.mask_history)
    return {**metrics, wire.NUM_EXAMPLES: site.data.n_users, wire.UNIT_WEIGHT: 1.0}  # unit: --dp central weighs by it


def audit_counts(site: ClientSite, train: TrainConfig, *, secure: bool = False) -> dict[str, np.ndarray]:
    """The federated audit's first answer: how many test users have each train-history
    length (the server finds the activity threshold on the sum) and, without DP, this
    client's training interactions per item (the server sums them into the popularity).
    ``secure``: for a SecAgg+ sum, so LENGTH_BINS lengths (one size at every store)."""
    split = leave_one_out(site.data)
    lengths = np.fromiter((len(split.train[u]) for u in split.test.users), dtype=np.int64, count=len(split.test.users))
    found = {wire.HISTORY_LENGTHS: length_histogram(lengths, bins=LENGTH_BINS if secure else None)}
    if not privacy_mode(train.dp).stores_add_noise:  # under store DP popularity is only the accounted release (the prior)
        found[wire.ITEM_COUNTS] = interaction_counts(split.train, n_items=site.data.n_items)
    return found


def own_store_label(site: ClientSite, federation: FederationConfig) -> dict[str, str]:
    """{AUDIT_STORE: the store id its log gives every customer} for one store of a store
    partition, else {}: which store it is, so that a secure audit's store grouping can name
    it among labels fixed before the query."""
    if federation.partition != "store" or site.data.stores is None:
        return {}
    labels = np.unique(np.asarray(site.data.stores).astype(str))
    return {wire.AUDIT_STORE: str(labels[0])} if len(labels) == 1 else {}


def audit_client(site: ClientSite, train: TrainConfig, global_state: dict[str, torch.Tensor], config: AuditConfig, *,
                 threshold: int, popularity: np.ndarray | None,
                 vocabularies: Mapping[str, Sequence[str]] | None = None) -> tuple[dict[str, AuditSums], list[str], list[str]]:
    """The federated audit's second answer: the audit sums over this client's own test users
    (ranked as ``evaluate_client`` ranks them, MF with its private user vectors), customers
    keyed by their raw id so the bootstrap weights match a central audit's. Returns {key:
    sums}, the grouping names in report order, and the groupings left out: under a secure
    audit (``vocabularies``, fixed by the server before asking) those no vocabulary names."""
    split = leave_one_out(site.data)
    model = build_client_model(site, train, global_state)
    evaluated = evaluation_pass(model, split.test, mask_history=train.mask_history, top_k=config.top_k)
    labels = user_groupings(site.data, split, split.test.users, threshold=threshold)
    sums = audit_sums(evaluated, split.test, site.data.users.raw[split.test.users], labels, n_items=site.data.n_items,
                      popularity=popularity, mask_history=train.mask_history, config=config, vocabularies=vocabularies)
    audited = [name for name in labels if vocabularies is None or name in vocabularies]
    return {s.key: s for s in sums}, audited, [name for name in labels if name not in audited]
