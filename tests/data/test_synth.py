"""Synthetic beauty-shop logs: real Beauty histories, invented customers, written atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedrec.data import BEAUTY, load_dataset
from fedrec.data.synth import events as synth  # write_synth looks up _write_table here
from fedrec.data.synth import (
    AGE_BANDS, CATALOG_COLUMNS, CATEGORIES, EVENT_COLUMNS, SKIN_GIVEN_CATEGORY, SKIN_TYPES, UNBRANDED,
    build_catalog, synthesize, write_synth,
)
from fedrec.errors import ConfigError, DataError

PROFILE = ("loyalty_id", "name", "email", "phone", "street_address", "postcode", "city", "birth_date",
           "gender", "skin_type", "device_ip", "opt_out", "store_id", "region")


@pytest.fixture(scope="module")
def beauty():
    return load_dataset(BEAUTY)


@pytest.fixture(scope="module")
def log():
    """Resampled: 3000 customers over 4 stores in 2 regions."""
    return synthesize(stores=4, users=3000, seed=0)


@pytest.fixture(scope="module")
def full_log():
    """Every Beauty user once, in file order."""
    return synthesize(stores=3)


def histories(beauty) -> dict:
    """Beauty user id -> raw item ids, oldest first."""
    return {int(u): beauty.items.raw[seq - 1].tolist() for u, seq in zip(beauty.users.raw, beauty.sequences)}


def replayed(events: pd.DataFrame) -> dict:
    """customer id -> items in the order of the log's rows."""
    return {c: g.tolist() for c, g in events.groupby("customer_id", sort=False)["item_id"]}


def main_category(events: pd.DataFrame) -> pd.Series:
    """Each customer's most frequent category, ties to the larger category (CATEGORIES order)."""
    counts = pd.crosstab(events["customer_id"], events["category"]).reindex(columns=list(CATEGORIES), fill_value=0)
    return counts.idxmax(axis=1)


# --- shape ---------------------------------------------------------------------------------


def test_events_and_catalog_have_exactly_the_agreed_columns(log):
    assert tuple(log.events.columns) == EVENT_COLUMNS
    assert tuple(log.catalog.columns) == CATALOG_COLUMNS
    assert log.events["item_id"].dtype == np.int64
    assert log.events["price"].dtype == np.float64
    assert log.events["opt_out"].dtype == bool
    assert log.events["customer_id"].str.fullmatch(r"C\d{6}").all()
    assert log.events["birth_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert log.events["timestamp"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}").all()
    assert set(log.events["event_type"]) == {"view", "cart", "purchase"}


def test_the_same_seed_gives_the_same_log_and_another_seed_a_different_one(log):
    again = synthesize(stores=4, users=3000, seed=0)
    other = synthesize(stores=4, users=3000, seed=1)

    pd.testing.assert_frame_equal(again.events, log.events)
    pd.testing.assert_frame_equal(again.customers, log.customers)
    assert not other.events["name"].equals(log.events["name"])
    assert not other.customers["source_user"].equals(log.customers["source_user"])
    pd.testing.assert_frame_equal(other.catalog, log.catalog)  # one catalog for every seed


def test_each_customer_replays_their_beauty_history_in_order(full_log, beauty):
    truth = histories(beauty)
    customers = full_log.customers

    assert len(customers) == beauty.n_users
    assert customers["source_user"].tolist() == [int(u) for u in beauty.users.raw]
    by_customer = replayed(full_log.events)
    assert all(by_customer[c] == truth[u] for c, u in zip(customers["customer_id"], customers["source_user"]))


def test_users_resamples_histories_under_new_customer_ids(log, beauty):
    truth = histories(beauty)

    assert log.customers["customer_id"].is_unique and len(log.customers) == 3000
    assert log.customers["source_user"].duplicated().any()  # drawn with replacement
    by_customer = replayed(log.events)
    assert all(by_customer[c] == truth[u] for c, u in zip(log.customers["customer_id"], log.customers["source_user"]))


def test_the_log_is_in_time_order_and_each_customers_times_strictly_increase(log):
    times = pd.to_datetime(log.events["timestamp"])

    assert times.is_monotonic_increasing
    assert (times.groupby(log.events["customer_id"]).diff().dropna() > pd.Timedelta(0)).all()


# --- people ----------------------------------------------------------------------------------


def test_every_customer_has_one_profile_and_one_home_store(log):
    per_customer = log.events.groupby("customer_id")[list(PROFILE)].nunique()

    assert (per_customer == 1).all().all()
    profiles = log.events.drop_duplicates("customer_id").set_index("customer_id")[list(PROFILE)]
    expected = log.customers.set_index("customer_id").loc[profiles.index, list(PROFILE)]
    pd.testing.assert_frame_equal(profiles, expected)
    assert log.customers["email"].is_unique and log.customers["loyalty_id"].is_unique


def test_some_order_notes_carry_the_customers_email_or_phone_inside_prose(log):
    notes = log.events[log.events["order_note"] != ""]
    with_email = notes[notes["order_note"].str.contains("@", regex=False)]
    with_phone = notes[notes["order_note"].str.contains(r"07\d{3} \d{6}")]

    assert 0.01 < len(notes) / len(log.events) < 0.10
    assert len(with_email) and len(with_phone)
    assert all(e in n and n != e for e, n in zip(with_email["email"], with_email["order_note"]))
    assert all(p in n and n != p for p, n in zip(with_phone["phone"], with_phone["order_note"]))
    assert set(notes["event_type"]) == {"purchase"}


def test_a_few_customers_opt_out(log):
    share = log.customers["opt_out"].mean()

    assert 0.005 < share < 0.05
    assert log.events.groupby("customer_id")["opt_out"].nunique().max() == 1


def test_stores_differ_in_the_categories_their_customers_buy(log):
    mix = pd.crosstab(log.events["store_id"], log.events["category"], normalize="index")

    assert len(mix) == 4 and log.stores["region"].nunique() == 2
    assert (mix.max() - mix.min()).max() > 0.10
    assert (log.stores["customers"] > 0).all()


def test_skin_type_follows_the_main_category_as_documented(log):
    main = main_category(log.events)
    skin = log.customers.set_index("customer_id")["skin_type"].loc[main.index]
    observed = pd.crosstab(main, skin, normalize="index").reindex(columns=list(SKIN_TYPES), fill_value=0)

    for category in ("Skin Care", "Makeup", "Hair Care"):  # the categories with hundreds of customers
        expected = SKIN_GIVEN_CATEGORY[CATEGORIES.index(category)]
        assert np.abs(observed.loc[category].to_numpy() - expected).max() < 0.06, category
    dry_or_sensitive = observed[["dry", "sensitive"]].sum(axis=1)
    assert dry_or_sensitive["Skin Care"] > dry_or_sensitive["Makeup"] + 0.3


def test_makeup_buyers_are_younger_than_skin_care_buyers(log):
    main = main_category(log.events)
    born = pd.to_datetime(log.customers.set_index("customer_id")["birth_date"]).loc[main.index]
    age = (pd.Timestamp("2024-01-01") - born).dt.days / 365.25

    assert age[main == "Skin Care"].median() - age[main == "Makeup"].median() > 8
    assert age.min() >= AGE_BANDS[0][0]


def test_a_few_customers_have_a_unique_age_gender_postcode_combination(log):
    people = log.customers.assign(district=log.customers["postcode"].str.split(" ").str[0])
    combo_size = people.groupby(["age_band", "gender", "postcode"])["customer_id"].transform("size")
    rare = people[people["rare_combo"]]

    assert len(rare) >= 3
    assert (rare["age_band"] == "90+").all() and (rare["gender"] != "female").all()
    assert (combo_size[people["rare_combo"]] == 1).all()
    assert not people.loc[~people["rare_combo"], "district"].isin(rare["district"]).any()  # remote districts


# --- catalog -----------------------------------------------------------------------------------


def test_events_take_brand_category_and_price_from_the_catalog(log):
    merged = log.events.merge(log.catalog, on="item_id", suffixes=("", "_catalog"))

    assert len(merged) == len(log.events)
    for column in ("brand", "category", "price"):
        assert (merged[column] == merged[f"{column}_catalog"]).all(), column


def test_the_catalog_names_each_beauty_item_with_its_brand_and_category(log, beauty):
    catalog = log.catalog

    assert len(catalog) == beauty.n_items and catalog["item_id"].is_unique
    assert set(catalog["category"]) == set(CATEGORIES)
    assert all(b in n and f"({c})" in n for b, c, n in zip(catalog["brand"], catalog["category"], catalog["name"]))
    assert catalog["category"].value_counts().index[0] == CATEGORIES[0]  # named by size
    assert 0.2 < (catalog["brand"] == UNBRANDED).mean() < 0.6
    assert (catalog["price"] > 0).all()


def test_brand_is_the_attribute_before_the_department_and_category_the_department():
    # departments 1..6 open some lists and come second in others; 90+ are brands, 50+ sub-categories
    attributes = {10 * d + k: [d, 50 + d] for d in range(1, 7) for k in range(7 - d)}
    attributes |= {100 + d: [90 + d, d, 60] for d in range(1, 7)}

    catalog = build_catalog(attributes).set_index("item_id")

    assert catalog.loc[11, "brand"] == UNBRANDED and catalog.loc[11, "category"] == CATEGORIES[0]
    assert catalog.loc[101, "category"] == CATEGORIES[0] and catalog.loc[106, "category"] == CATEGORIES[5]
    assert catalog.loc[[101, 102, 103], "brand"].is_unique and UNBRANDED not in set(catalog.loc[101:106, "brand"])


def test_attribute_lists_without_six_departments_are_refused():
    with pytest.raises(DataError, match="departments"):
        build_catalog({1: [1, 2], 2: [3, 1]})


# --- writing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_synth_round_trips_events_and_writes_the_catalog_beside_them(log, tmp_path, suffix):
    small = synth.SynthLog(events=log.events.head(500), catalog=log.catalog, customers=log.customers,
                           stores=log.stores, seed=0)

    events_path, catalog_path = write_synth(small, tmp_path / f"shop{suffix}")

    assert catalog_path == tmp_path / "shop_catalog.csv"
    if suffix == ".csv":  # CSV has no empty string: empty notes come back as NaN unless told
        back = pd.read_csv(events_path, keep_default_na=False)
    else:
        back = pd.read_parquet(events_path)
    pd.testing.assert_frame_equal(back, small.events, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(catalog_path), log.catalog, check_dtype=False)
    assert {p.name for p in tmp_path.iterdir()} == {"shop_catalog.csv", f"shop{suffix}"}


def test_write_synth_refuses_an_unknown_suffix_and_writes_nothing(log, tmp_path):
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        write_synth(log, tmp_path / "shop.json")

    assert list(tmp_path.iterdir()) == []


def test_a_failed_catalog_write_leaves_no_events_file_behind(log, tmp_path, monkeypatch):
    real = synth._write_table

    def fail_on_catalog(frame, path, suffix):
        if frame is log.catalog:
            path.write_text("half a catalog")
            raise OSError("disk full")
        real(frame, path, suffix)

    monkeypatch.setattr(synth, "_write_table", fail_on_catalog)
    with pytest.raises(OSError, match="disk full"):
        write_synth(log, tmp_path / "shop.parquet")

    assert list(tmp_path.iterdir()) == []


def test_fedrecs_reader_needs_user_id_and_reads_the_log_once_customer_id_is_renamed(log, tmp_path):
    events_path, _ = write_synth(log, tmp_path / "shop.csv")
    with pytest.raises(DataError, match="user_id"):
        load_dataset(str(events_path))

    renamed = pd.read_csv(events_path).rename(columns={"customer_id": "user_id"})
    renamed.to_csv(tmp_path / "as_reader_wants.csv", index=False)
    data = load_dataset(str(tmp_path / "as_reader_wants.csv"))

    assert data.n_users == len(log.customers) and data.n_interactions == len(log.events)
    assert set(data.stores) == set(log.stores["store_id"])


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, named", [
    ({"stores": 0}, "stores=0"), ({"stores": True}, "stores=True"), ({"stores": 2, "users": 0}, "users=0"),
    ({"stores": 2, "seed": -1}, "seed=-1"), ({"stores": 2, "users": 2.5}, "users=2.5"),
    ({"stores": 10, "users": 5}, "--users 10"),
])
def test_bad_arguments_raise_a_config_error_naming_them(arguments, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        synthesize(**arguments)
