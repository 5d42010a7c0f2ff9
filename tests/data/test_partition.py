"""Users into federated clients: real store columns, seeded Dirichlet stores, one client per user."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedrec.data import BEAUTY, load_dataset
from fedrec.data.interactions import Interactions, build_interactions
from fedrec.data.partition import (
    Partition,
    client_interactions,
    make_partition,
    partition_by_store,
    partition_by_user,
    user_labels,
)
from fedrec.errors import ConfigError

DEPARTMENTS = 5
ITEMS_PER_DEPARTMENT = 12


def shop(n_users: int = 300, seed: int = 0) -> Interactions:
    """Users who mostly buy in one department; items carry [brand, department, sub-category].

    Brands here sell in one department, so the department is each user's most frequent attribute.
    """
    rng = np.random.default_rng(seed)
    users, sequences = [], []
    for user in range(n_users):
        home = user % DEPARTMENTS
        length = int(rng.integers(4, 9))
        departments = np.where(rng.random(length) < 0.8, home, rng.integers(0, DEPARTMENTS, length))
        sequences.append([f"d{d}-i{int(rng.integers(ITEMS_PER_DEPARTMENT))}" for d in departments])
        users.append(f"u{user}")
    items = sorted({i for seq in sequences for i in seq})
    department = [int(i[1]) for i in items]
    brand = [1000 + d * 3 + int(i.split("-i")[1]) % 3 for d, i in zip(department, items)]
    attributes = pd.DataFrame({"attributes": [[b, d, 100 + d] for b, d in zip(brand, department)]}, index=items)
    return build_interactions(users, sequences, source="shop", item_attributes=attributes)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def store_log(tmp_path: Path) -> Path:
    """Five users in three stores, with ratings and a per-user age column."""
    rows = ["user_id,item_id,timestamp,store_id,rating,age"]
    stores = {"u1": "north", "u2": "south", "u3": "north", "u4": "east", "u5": "south"}
    for n, (user, store) in enumerate(stores.items()):
        for t in range(3 + n):
            rows.append(f"{user},i{(n + t) % 6},{t},{store},{(t % 5) + 1},{20 + n}")
    return write(tmp_path / "log.csv", "\n".join(rows) + "\n")


def all_users(partition: Partition) -> np.ndarray:
    return np.concatenate(partition.client_users)


@pytest.fixture(scope="module")
def beauty() -> Interactions:
    return load_dataset(BEAUTY)


# --- every user in exactly one client ---------------------------------------------------


def test_every_user_lives_in_exactly_one_simulated_store():
    data = shop()

    partition = partition_by_store(data, 7, alpha=0.5, seed=0)

    assert partition.num_clients == 7
    assert sorted(all_users(partition).tolist()) == list(range(data.n_users))
    assert all(np.array_equal(users, np.sort(users)) for users in partition.client_users)
    assert partition.sizes().sum() == data.n_users


def test_every_user_is_their_own_client_in_the_user_scheme():
    data = shop(n_users=40)

    partition = partition_by_user(data)

    assert partition.scheme == "user"
    assert [users.tolist() for users in partition.client_users] == [[u] for u in range(40)]
    assert partition.client_names[:2] == ("user-u0", "user-u1")


def test_user_scheme_has_one_client_per_beauty_user(beauty):
    partition = make_partition(beauty, "user", None, alpha=0.5, seed=0)

    assert partition.num_clients == 22_363
    assert sorted(all_users(partition).tolist()) == list(range(22_363))


# --- seeds -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_stores():
    data = shop()

    first = partition_by_store(data, 6, alpha=0.5, seed=3)
    second = partition_by_store(data, 6, alpha=0.5, seed=3)

    assert first == second


def test_different_seeds_give_different_stores():
    data = shop()

    first = partition_by_store(data, 6, alpha=0.5, seed=3)
    second = partition_by_store(data, 6, alpha=0.5, seed=4)

    assert first != second


# --- real stores from a store_id column ----------------------------------------------------


def test_store_id_column_makes_one_client_per_store_in_sorted_order(tmp_path):
    data = load_dataset(str(store_log(tmp_path)))

    partition = partition_by_store(data, None)

    assert partition.client_names == ("store-east", "store-north", "store-south")
    members = [data.users.to_raw(users).tolist() for users in partition.client_users]
    assert members == [["u4"], ["u1", "u3"], ["u2", "u5"]]


def test_passing_the_store_count_with_a_store_column_is_accepted(tmp_path):
    data = load_dataset(str(store_log(tmp_path)))

    partition = partition_by_store(data, 3)

    assert partition.num_clients == 3


def test_num_clients_that_differs_from_the_store_column_is_a_config_error(tmp_path):
    data = load_dataset(str(store_log(tmp_path)))

    with pytest.raises(ConfigError) as raised:
        partition_by_store(data, 10)

    assert "3 stores" in str(raised.value)
    assert "omit --num-clients or pass 3" in str(raised.value)


# --- simulated stores -------------------------------------------------------------------------


def test_every_simulated_store_gets_at_least_min_users_even_under_heavy_skew():
    data = shop(n_users=120)

    partition = partition_by_store(data, 30, alpha=0.01, seed=0, min_users=3)

    assert partition.sizes().min() >= 3
    assert sorted(all_users(partition).tolist()) == list(range(120))


def test_more_stores_than_users_allow_is_a_config_error():
    data = shop(n_users=20)

    with pytest.raises(ConfigError) as raised:
        partition_by_store(data, 11, min_users=2)

    assert "22 users" in str(raised.value)
    assert "--num-clients 10 or fewer" in str(raised.value)


@pytest.mark.parametrize("bad", [0, -3])
def test_num_clients_below_one_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=f"num_clients={bad} must be >= 1"):
        partition_by_store(shop(n_users=20), bad)


def test_simulated_stores_need_a_store_count():
    with pytest.raises(ConfigError, match="no store_id column"):
        partition_by_store(shop(n_users=20), None)


def test_labels_follow_each_users_home_department():
    data = shop(n_users=50)

    labels, kind = user_labels(data)

    assert kind == "most frequent item attribute"
    homes = np.arange(50) % DEPARTMENTS
    # the label code of each department is arbitrary; users of one department share one code
    assert all(len(set(labels[homes == d].tolist())) == 1 for d in range(DEPARTMENTS))
    assert len(set(labels.tolist())) == DEPARTMENTS


def test_lower_alpha_gives_more_skewed_stores_on_beauty(beauty):
    skewed = partition_by_store(beauty, 50, alpha=0.1, seed=0)
    mixed = partition_by_store(beauty, 50, alpha=10.0, seed=0)

    skewed_js = skewed.stats(beauty)["label_skew"]["js"]
    mixed_js = mixed.stats(beauty)["label_skew"]["js"]

    assert skewed_js > mixed_js + 0.3
    assert skewed.sizes().min() >= 2


def test_without_item_attributes_stores_follow_popularity_bands_and_say_so(caplog):
    data = dataclasses.replace(shop(), item_attributes=None)

    with caplog.at_level(logging.INFO, logger="fedrec.data"):
        partition = partition_by_store(data, 5, alpha=0.5, seed=0)

    assert "popularity band" in caplog.text
    assert partition.stats(data)["label_skew"]["label"].startswith("popularity band")
    assert sorted(all_users(partition).tolist()) == list(range(data.n_users))


# --- make_partition ----------------------------------------------------------------------


def test_unknown_scheme_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="'shops' is not one of store, user"):
        make_partition(shop(n_users=20), "shops", 3, alpha=0.5, seed=0)


def test_user_scheme_with_another_client_count_is_a_config_error():
    with pytest.raises(ConfigError, match="one client per user, 20 here"):
        make_partition(shop(n_users=20), "user", 5, alpha=0.5, seed=0)


def test_store_scheme_dispatches_to_the_seeded_store_split():
    data = shop()

    partition = make_partition(data, "store", 4, alpha=0.5, seed=1)

    assert partition == partition_by_store(data, 4, alpha=0.5, seed=1)


# --- one client's data -------------------------------------------------------------------


def test_client_data_keeps_item_ids_and_each_users_sequence():
    data = shop()
    partition = partition_by_store(data, 5, alpha=0.5, seed=0)
    users = partition.client_users[2]

    client = client_interactions(data, partition, 2)

    assert client.n_users == len(users)
    assert client.items is data.items
    assert client.item_attributes is data.item_attributes
    assert all(np.array_equal(client.sequences[k], data.sequences[u]) for k, u in enumerate(users))
    assert client.users.to_raw(range(len(users))).tolist() == data.users.to_raw(users).tolist()


def test_client_data_slices_stores_ratings_and_user_attributes(tmp_path):
    data = load_dataset(str(store_log(tmp_path)))
    partition = partition_by_store(data, None)

    north = client_interactions(data, partition, 1)

    assert north.users.raw.tolist() == ["u1", "u3"]
    assert north.stores.tolist() == ["north", "north"]
    assert [r.tolist() for r in north.ratings] == [data.ratings[0].tolist(), data.ratings[2].tolist()]
    assert north.user_attributes.index.tolist() == [0, 1]
    assert north.user_attributes["age"].tolist() == [20, 22]


@pytest.mark.parametrize("client", [-1, 5])
def test_out_of_range_client_is_a_config_error_naming_the_valid_range(client):
    data = shop(n_users=40)
    partition = partition_by_store(data, 5, alpha=0.5, seed=0)

    with pytest.raises(ConfigError, match="valid indices 0..4"):
        client_interactions(data, partition, client)


# --- reporting -------------------------------------------------------------------------------


def test_stats_count_users_and_interactions_per_client():
    data = shop()
    partition = partition_by_store(data, 5, alpha=0.5, seed=0)

    stats = partition.stats(data)

    sizes = partition.sizes()
    assert stats["clients"] == 5
    assert stats["users_per_client"]["min"] == sizes.min()
    assert stats["users_per_client"]["max"] == sizes.max()
    longest = max(sum(len(data.sequences[u]) for u in users) for users in partition.client_users)
    assert stats["interactions_per_client"]["max"] == longest
    assert 0.0 <= stats["label_skew"]["js"] <= 1.0


def test_user_scheme_stats_have_no_label_skew():
    data = shop(n_users=30)

    stats = partition_by_user(data).stats(data)

    assert stats["clients"] == 30
    assert stats["label_skew"] is None


def test_describe_gives_a_short_summary_for_the_log():
    data = shop()
    partition = partition_by_store(data, 5, alpha=0.5, seed=0)

    text = partition.describe(data)

    assert text.splitlines()[0].startswith("partition: store scheme, 5 clients")
    assert "alpha=0.5" in text
    assert "JS distance" in text
    assert len(text.splitlines()) == 4
