"""A federated simulation on a raw synthetic shop log: each store anonymizes its own rows,
training has one client per store, and no raw identifier reaches the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import fedrec
from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation import wire
from fedrec.federation.client import locate_site

from fedrec.data.synth import synthesize, write_synth
from tests.federation.test_simulation import SMALL
from tests.federation.test_simulation import fedrec as run_cli

DIRECT = ("customer_id", "loyalty_id", "name", "email", "phone", "street_address", "device_ip")


def raw_identifiers(raw: pd.DataFrame) -> set[str]:
    return {str(v) for column in DIRECT for v in raw[column].unique() if str(v)}


def run_dir_texts(run: Path):
    """Every file of the run as text a reader would see: Parquet cell by cell (its pages are
    compressed), every other file byte for byte."""
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            yield path, "\n".join(frame.astype(str).to_numpy().ravel())
        else:
            yield path, path.read_bytes().decode("latin-1")


def test_stores_anonymize_their_own_rows_and_the_run_holds_no_raw_identifier(tmp_path):
    raw_path, _ = write_synth(synthesize(stores=3, users=240, seed=3), tmp_path / "raw.csv")
    raw = pd.read_csv(raw_path, dtype=str, keep_default_na=False)
    before = raw_path.read_bytes()
    key = tmp_path / "store.key"
    assert run_cli("keys", "--out", str(key)).returncode == 0
    run = tmp_path / "run"

    result = run_cli("simulate", "--model", "mf", "--data", str(raw_path), "--anonymize-key", str(key), "--k-anonymity", "3",
                    "--rounds", "1", *SMALL, "--out", str(run))

    assert result.returncode == 0, result.stderr[-3000:]
    assert raw_path.read_bytes() == before
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["federation"]["min_available"] == 3  # every store is a client
    assert "simulating 3 store clients" in result.stderr
    stores = sorted(raw["store_id"].unique())
    for store in stores:
        report = json.loads((run / "anonymization" / f"store-{store}" / "report.json").read_text())
        assert report["k_achieved"] >= 3
    # The privacy audit scores each store's prosecutor risk from the class sizes its report keeps.
    audit = run_cli("privacy-audit", str(run), "--no-leakage", "--no-membership")
    assert audit.returncode == 0, audit.stderr[-3000:]
    risk = json.loads((run / "privacy" / "attacks.json").read_text())["reidentification"]
    assert sorted(risk["stores"]) == [f"store-{store}" for store in stores]
    for store in stores:
        classes = json.loads((run / "anonymization" / f"store-{store}" / "report.json").read_text())["classes"]
        sizes = {int(size): count for size, count in classes["classes_by_size"].items()}
        assert sum(size * count for size, count in sizes.items()) == sum(b["users"] for b in classes["histogram"].values())
        assert risk["stores"][f"store-{store}"]["worst"] == 1 / min(sizes) <= 1 / 3
        assert risk["stores"][f"store-{store}"]["average"] == sum(sizes.values()) / sum(s * c for s, c in sizes.items())
    union = pd.read_parquet(run / "anonymization" / "stores.parquet")
    assert sorted(union["store_id"].unique()) == stores
    secrets = raw_identifiers(raw)
    assert len(secrets) > 1000
    key_hex = key.read_bytes().hex()
    for path, text in run_dir_texts(run):
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{path} holds raw identifiers {leaked[:5]}"
        assert key_hex not in text
    assert "store.key" not in (run / "metrics.json").read_text()
    logged = [s for s in secrets if s in result.stdout + result.stderr]
    assert not logged, f"the run's log holds raw identifiers {logged[:5]}"


def test_a_deployed_store_anonymizes_its_own_raw_log_with_its_own_key(tmp_path):
    raw_path, _ = write_synth(synthesize(stores=2, users=120, seed=5), tmp_path / "all.csv")
    raw = pd.read_csv(raw_path, dtype=str, keep_default_na=False)
    store = raw[raw["store_id"] == sorted(raw["store_id"].unique())[0]]
    own_raw = tmp_path / "store" / "raw.csv"
    own_raw.parent.mkdir()
    store.to_csv(own_raw, index=False)
    key = fedrec.make_key(tmp_path / "store" / "store.key")
    catalog = tmp_path / "catalog.parquet"  # the evaluation extract the server holds: anonymized too
    fedrec.anonymize_log(raw_path, catalog, key=key, k=2)
    train, federation = TrainConfig(model="mf", data=str(catalog)), FederationConfig()
    state = tmp_path / "store" / "state"
    node = {wire.NODE_RAW_DATA_PATH: str(own_raw), wire.NODE_KEY_PATH: str(key), wire.NODE_STATE_DIR: str(state),
            wire.NODE_K_ANONYMITY: 2}

    site = locate_site(node, train, federation, None)

    assert site.data.n_users > 0 and site.state_dir == state
    copy = pd.read_parquet(state / "anonymized.parquet")
    assert not set(copy["user_id"]) & set(store["customer_id"])
    assert json.loads((state / "anonymization" / "report.json").read_text())["k_achieved"] >= 2
    with pytest.raises(ConfigError, match="key-path"):
        locate_site({wire.NODE_RAW_DATA_PATH: str(own_raw)}, train, federation, None)


def test_a_store_keeps_one_name_from_its_anonymization_to_its_ledger(tmp_path):
    """The review found store-S01 in the anonymization folder and store-0 in the ledgers."""
    raw_path, _ = write_synth(synthesize(stores=2, users=160, seed=5), tmp_path / "raw.csv")
    key = tmp_path / "store.key"
    assert run_cli("keys", "--out", str(key)).returncode == 0
    run = tmp_path / "run"

    result = run_cli("simulate", "--model", "lstm", "--data", str(raw_path), "--anonymize-key", str(key),
                     "--k-anonymity", "2", "--dp", "--target-epsilon", "8", "--rounds", "1", *SMALL, "--out", str(run))

    assert result.returncode == 0, result.stderr[-3000:]
    stores = sorted(pd.read_csv(raw_path, dtype=str)["store_id"].unique())
    names = [f"store-{store}" for store in stores]
    assert sorted(p.name for p in (run / "anonymization").iterdir() if p.is_dir()) == names
    report = json.loads((run / "privacy" / "report.json").read_text())
    assert sorted(report_names(report)) == names


def report_names(report: dict) -> list[str]:
    clients = report.get("clients") or report.get("stores") or {}
    return list(clients) if isinstance(clients, dict) else [c.get("client") or c.get("name") for c in clients]
