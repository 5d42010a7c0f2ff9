"""A deployed store's own anonymized copy (fedrec.federation.store_logs.anonymize_own_log): made
again whenever what shapes it changed, not only the raw log."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

import fedrec
from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError, DataError
from fedrec.federation import wire
from fedrec.federation.client import locate_site
from fedrec.federation.store_logs import OWN_COPY, OWN_COPY_SETTINGS, anonymize_own_log, anonymize_stores


def test_the_own_copy_is_made_again_when_k_or_the_key_changes(tmp_path):
    raw, _ = fedrec.synth(tmp_path / "raw.parquet", stores=1, users=300, seed=3)
    first_key, second_key = fedrec.make_key(tmp_path / "a.key"), fedrec.make_key(tmp_path / "b.key")
    state = tmp_path / "state"

    copy = anonymize_own_log(raw, first_key, state, k=2)
    made = copy.stat().st_mtime_ns
    pseudonyms = set(pd.read_parquet(copy)["user_id"])
    assert anonymize_own_log(raw, first_key, state, k=2).stat().st_mtime_ns == made  # nothing changed: reused

    anonymize_own_log(raw, first_key, state, k=10)
    assert json.loads((state / OWN_COPY_SETTINGS).read_text())["k"] == 10
    assert copy.stat().st_mtime_ns != made
    anonymize_own_log(raw, second_key, state, k=10)
    assert set(pd.read_parquet(copy)["user_id"]).isdisjoint(pseudonyms)  # another key, other pseudonyms
    assert "key" not in (state / OWN_COPY_SETTINGS).read_text().replace("key_sha256", "")  # a fingerprint only


def test_a_deployed_store_takes_its_schema_from_its_node_config(tmp_path):
    """`schema-path` in the SuperNode's node config: the store's own declarations shape its copy
    (here: a column the names do not know, refused without a schema, declared a direct
    identifier, is dropped); changing the schema makes the copy again."""
    raw, _ = fedrec.synth(tmp_path / "raw.parquet", stores=1, users=300, seed=4)
    key = fedrec.make_key(tmp_path / "store.key")
    fedrec.anonymize_log(raw, tmp_path / "catalog.parquet", key=key)  # the items every store shares
    frame = pd.read_parquet(raw)
    frame["member_tier"] = frame["name"].str.len().astype(str)  # a per-customer column nobody recognises by name
    frame.to_parquet(raw, index=False)
    train = TrainConfig(model="lstm", data=str(tmp_path / "catalog.parquet"))
    config = {wire.NODE_RAW_DATA_PATH: str(raw), wire.NODE_KEY_PATH: str(key), wire.NODE_STATE_DIR: str(tmp_path / "s")}
    with pytest.raises(DataError, match="'member_tier': constant per customer"):
        locate_site(config, train, FederationConfig(), None)  # deny by default: the store refuses to train

    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"keep": ["member_tier"]}))
    locate_site({**config, wire.NODE_SCHEMA_PATH: str(schema)}, train, FederationConfig(), None)
    assert "member_tier" in pd.read_parquet(tmp_path / "s" / OWN_COPY).columns
    schema.write_text(json.dumps({"direct_identifiers": ["member_tier"]}))
    locate_site({**config, wire.NODE_SCHEMA_PATH: str(schema)}, train, FederationConfig(), None)

    assert "member_tier" not in pd.read_parquet(tmp_path / "s" / OWN_COPY).columns
    assert json.loads((tmp_path / "s" / OWN_COPY_SETTINGS).read_text())["schema"] is not None


def test_a_ledger_kept_under_a_stores_old_positional_name_is_not_silently_left_behind(tmp_path):
    """Stores of a log with a store column were store-0, store-1, ... in their ledgers; now
    store-<id>. A state dir with the old name must not restart that store's lifetime budget."""
    rows = [f"u{u},i{(u + t) % 9},{1_700_000_000 + t},{'S01' if u < 6 else 'S02'}" for u in range(12) for t in range(4)]
    log = tmp_path / "shop.csv"
    log.write_text("user_id,item_id,timestamp,store_id\n" + "\n".join(rows) + "\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "store-0.privacy.json").write_text("{}")
    train, federation = TrainConfig(model="lstm", data=str(log)), FederationConfig(partition="store")
    config = {wire.NODE_PARTITION_ID: 0, wire.NODE_NUM_PARTITIONS: 2, wire.NODE_STATE_DIR: str(state)}

    with pytest.raises(ConfigError, match="store-0 from before stores were named by their id; this store is now store-S01"):
        locate_site(config, train, federation, None)
    (state / "store-0.privacy.json").rename(state / "store-S01.privacy.json")
    assert locate_site(config, train, federation, None).name == "store-S01"


def test_each_store_of_a_simulation_says_its_anonymization_in_one_line_the_details_at_debug(tmp_path, caplog):
    raw, _ = fedrec.synth(tmp_path / "raw.csv", stores=3, users=240, seed=3)
    key = fedrec.make_key(tmp_path / "store.key")

    with caplog.at_level(logging.DEBUG, logger="fedrec.anonymize"):
        anonymize_stores(raw, tmp_path / "run", key_file=key, k=3)

    said = [r.getMessage() for r in caplog.records if r.name == "fedrec.anonymize" and r.levelno == logging.INFO]
    stores = [line for line in said if line.startswith("anonymize: store ")]
    assert [line.split(" (")[1][:6] for line in stores] == ["1 of 3", "2 of 3", "3 of 3"]
    assert "left" in stores[0] and "left" not in stores[-1]  # the time left, until the last one
    others = [line for line in said if line not in stores]  # the undeclared columns once, the shop's catalog copied
    assert len(others) == 2 and "published with no declared role" in others[0] and "item catalog" in others[1]
    details = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum("anonymize: pass 1" in line for line in details) == 3
