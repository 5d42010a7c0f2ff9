"""Client-side federation logic on real data, without Flower in the loop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import resolved
from fedrec.training import train_local_epochs
from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import leave_one_out
from fedrec.errors import ModelError
from fedrec.federation import wire
from fedrec.federation.client import locate_site, partitioned, train_client
from fedrec.federation.client_state import optimizer_state_file, state_file
from fedrec.models import create_model


def configs(chain_file, model: str) -> tuple[TrainConfig, FederationConfig]:
    train = TrainConfig(model=model, data=str(chain_file), dim=8, batch_size=16, optimizer="adam", lr=1e-2, threads=1)
    return resolved(train, FederationConfig(partition="store", num_clients=3, rounds=2, drift_correction="none"))


def global_state(train: TrainConfig, federation: FederationConfig):
    data, _ = partitioned(train, federation)
    return create_model(train.model, train, n_users=0, n_items=data.n_items).shareable_state()


def test_mf_client_sends_item_side_only_and_keeps_user_vectors_on_disk(chain_file, tmp_path):
    train, federation = configs(chain_file, "mf")
    site = locate_site({wire.NODE_PARTITION_ID: 1, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    update = train_client(site, train, federation, global_state(train, federation), round_number=1)
    shared, metrics = update.shared, update.metrics
    assert set(shared) == {"item_embedding.weight", "item_bias.weight"}
    saved = torch.load(state_file(tmp_path, site.name), weights_only=True)
    assert saved["tensors"]["user_embedding.weight"].shape == (site.data.n_users, 8)
    assert metrics[wire.NUM_EXAMPLES] == sum(len(s) - 2 for s in site.data.sequences)


def test_mf_user_vectors_persist_into_the_next_round(chain_file, tmp_path):
    train, federation = configs(chain_file, "mf")
    node = {wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 3}
    site = locate_site(node, train, federation, str(tmp_path))
    start = global_state(train, federation)
    train_client(site, train, federation, start, round_number=1)
    after_one = torch.load(state_file(tmp_path, site.name), weights_only=True)["tensors"]["user_embedding.weight"]
    train_client(site, train, federation, start, round_number=2)
    after_two = torch.load(state_file(tmp_path, site.name), weights_only=True)["tensors"]["user_embedding.weight"]
    fresh = create_model("mf", train, n_users=site.data.n_users, n_items=site.data.n_items).state()["user_embedding.weight"]
    # Round 2 started from round 1's vectors, not from a fresh initialisation.
    assert not torch.allclose(after_one, fresh)
    assert (after_two - after_one).abs().max() < (after_two - fresh).abs().max()


def test_lstm_client_shares_every_parameter(chain_file, tmp_path):
    train, federation = configs(chain_file, "lstm")
    site = locate_site({wire.NODE_PARTITION_ID: 2, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    before = global_state(train, federation)
    update = train_client(site, train, federation, before, round_number=1)
    shared, metrics = update.shared, update.metrics
    assert set(shared) == set(before)
    assert any(not torch.equal(shared[k], before[k]) for k in shared)
    assert metrics[wire.TRAIN_LOSS] > 0


def test_deployed_client_maps_its_own_file_onto_the_shared_catalog(chain_file, tmp_path):
    train, federation = configs(chain_file, "lstm")
    lines = chain_file.read_text().splitlines()[:10]
    own = tmp_path / "store-a.txt"
    own.write_text("\n".join(lines) + "\n")
    site = locate_site({wire.NODE_DATA_PATH: str(own)}, train, federation, None)
    full, _ = partitioned(train, federation)
    assert site.data.n_items == full.n_items  # catalog size, not the local item count
    first_raw = [int(x) for x in lines[0].split()[1:]]
    assert full.items.to_raw(site.data.sequences[0]).tolist() == first_raw


def test_deployed_client_keeps_private_state_on_its_own_disk_not_at_the_servers_path(chain_file, tmp_path):
    train, federation = configs(chain_file, "mf")
    own = tmp_path / "store-a" / "store-a.txt"
    own.parent.mkdir()
    own.write_text(chain_file.read_text())
    server_path = str(tmp_path / "server-run" / "client_state")  # what the server's message carries
    beside_data = locate_site({wire.NODE_DATA_PATH: str(own)}, train, federation, server_path)
    named = locate_site({wire.NODE_DATA_PATH: str(own), wire.NODE_STATE_DIR: str(tmp_path / "mine")}, train, federation, server_path)
    assert beside_data.state_dir == own.parent / "client_state"
    assert named.state_dir == tmp_path / "mine"


def test_sgd_client_leaves_rows_of_items_it_never_saw_untouched(chain_file, tmp_path):
    """Touched-row averaging needs the rows of items a store never trained on bit-identical;
    that must hold for the SGD clients federation now defaults to."""
    train, federation = configs(chain_file, "lstm")
    train = dataclasses.replace(train, optimizer="sgd", lr=1.0)
    site = locate_site({wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    model = create_model("lstm", train, n_users=site.data.n_users, n_items=site.data.n_items)
    assert isinstance(model.make_optimizer(), torch.optim.SGD)
    before = global_state(train, federation)
    shared = train_client(site, train, federation, before, round_number=1).shared
    seen = torch.zeros(site.data.n_items + 1, dtype=torch.bool)
    for sequence in site.data.sequences:
        seen[torch.as_tensor(sequence[:-2], dtype=torch.int64)] = True  # the train part
    changed = (shared["item_embedding.weight"] != before["item_embedding.weight"]).any(dim=1)
    assert changed[seen].any()
    assert not changed[~seen].any()


def test_kept_adam_state_continues_across_rounds_and_stays_on_the_client(chain_file, tmp_path):
    train, federation = configs(chain_file, "lstm")
    train = dataclasses.replace(train, optimizer="adam")
    federation = dataclasses.replace(federation, keep_optimizer_state=True)
    site = locate_site({wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    start = global_state(train, federation)
    update = train_client(site, train, federation, start, round_number=1)
    kept = optimizer_state_file(tmp_path, site.name)
    steps_one = int(torch.load(kept, weights_only=True)[0]["step"])
    assert steps_one > 0
    train_client(site, train, federation, start, round_number=2)
    # Round 2's Adam went on counting from round 1's steps (a fresh one would be back at steps_one).
    assert int(torch.load(kept, weights_only=True)[0]["step"]) == 2 * steps_one
    assert set(update.shared) == set(start)  # the moments never travel: only the model's parameters do


def test_an_optimizer_state_of_another_model_is_refused(chain_file, tmp_path):
    train, federation = configs(chain_file, "lstm")
    train = dataclasses.replace(train, optimizer="adam")
    site = locate_site({wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    model = create_model("lstm", train, n_users=site.data.n_users, n_items=site.data.n_items)
    _, state = train_local_epochs(model, leave_one_out(site.data), 1)
    wider = create_model("lstm", dataclasses.replace(train, dim=12), n_users=site.data.n_users, n_items=site.data.n_items)
    with pytest.raises(ModelError, match="optimizer state does not fit"):
        train_local_epochs(wider, leave_one_out(site.data), 1, optimizer_state=state)
