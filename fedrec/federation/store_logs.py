"""Stores anonymize their own raw logs before a federation trains on them.

In a simulation one raw log holds every store's rows, as the stores' exports would. The
split by store is the only step that reads all raw rows; it writes each store's rows to a
temporary folder (the stores' own disks, deleted afterwards), and each store's file is then
anonymized on its own, with per-store pseudonyms unless stores are linked. The run keeps
only anonymized data: ``anonymization/<store>.parquet``, their union (the server's
evaluation copy, ``anonymization/stores.parquet``) and each store's report.

A deployed SuperNode does the same for its one file (``anonymize_own_log``): the node
config names the raw file and the key; the anonymized copy and its report stay on the node.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from fedrec.anonymize import anonymize_file, load_key, resolve_schema
from fedrec.anonymize.pipeline import copy_catalog
from fedrec.anonymize.schema import load_schema
from fedrec.data.partition.stores import store_label
from fedrec.errors import ConfigError, DataError
from fedrec.progress import time_left
from fedrec.rundir import RunDir, atomic_write, write_json

log = logging.getLogger("fedrec.anonymize")

UNION = "stores.parquet"
OWN_COPY = "anonymized.parquet"
OWN_COPY_SETTINGS = "anonymized.settings.json"  # what made OWN_COPY: k, linking, the key's fingerprint (never the key)


def anonymize_stores(raw: Path, run_dir: Path, *, key_file: Path, k: int = 5, link_stores: bool = False,
                     schema: Path | None = None) -> Path:
    """Split ``raw`` by store, anonymize each store's part, return the union's path."""
    key = load_key(key_file)  # before reading any row: a bad key fails first
    declared = load_schema(schema) if schema is not None else None
    raw = Path(raw)
    frame = _read_raw(raw)
    store_column = resolve_schema(list(frame.columns), declared, source=str(raw)).store_id
    if store_column is None:
        raise DataError(
            f"{raw}: no store column (store_id or shop_id, or one declared in the schema's store_id role); "
            "an anonymized federation needs each row's store to give each store its own rows."
        )
    folder = RunDir(Path(run_dir)).anonymization
    folder.mkdir(parents=True, exist_ok=True)
    parts, undeclared = [], set()
    stores = frame.groupby(store_column, sort=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedrec-store-logs-") as stores_disks:
        for done, (store, rows) in enumerate(stores, start=1):
            name = _file_name(str(store))
            own = Path(stores_disks) / f"{name}{raw.suffix.lower()}"
            _write_like(rows, own)
            out = folder / f"{name}.parquet"
            report = anonymize_file(own, out, key=key, k=k, schema=declared, link_stores=link_stores,
                                    report_dir=folder / name, log_level=logging.DEBUG)  # one line a store, here
            left = time_left(time.perf_counter() - started, done, stores.ngroups)
            log.info("anonymize: store %s (%d of %d): %d rows, %d customers in; %d rows, %d customers out; k=%d%s",
                     store, done, stores.ngroups, report.rows_in, report.customers_in, report.rows_out,
                     report.users_out, report.k_achieved, f"; {left}" if left else "")
            undeclared.update(report.undeclared_published)
            parts.append(out)
    if undeclared:  # the same columns in every store's part, as a rule: said once
        log.info("anonymize: published with no declared role: %s (each store's report in %s says why)",
                 ", ".join(sorted(undeclared)), folder)
    union = folder / UNION
    copy_catalog(raw, union)  # the shop's item catalog is public: the run reads its attributes, the release its names
    atomic_write(union, lambda tmp: pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
                 .to_parquet(tmp, index=False))
    return union


def anonymize_own_log(raw: Path, key_file: Path, state_dir: Path, *, k: int = 5, link_stores: bool = False,
                      schema: Path | None = None) -> Path:
    """A deployed store's anonymized copy of its own raw log, made once and made again when
    the raw file is newer or anything that shapes it changed (k, the key, linking stores, the
    store's schema file: node config ``schema-path``); returns its path."""
    raw, state_dir = Path(raw).expanduser(), Path(state_dir)
    copy, made_with = state_dir / OWN_COPY, state_dir / OWN_COPY_SETTINGS
    key = load_key(key_file)
    declared = load_schema(schema) if schema is not None else None
    settings = {"k": int(k), "link_stores": bool(link_stores),
                "key_sha256": hashlib.sha256(b"fedrec own-log key fingerprint" + key).hexdigest(),
                "schema": None if declared is None else json.dumps(declared, sort_keys=True)}
    if (copy.exists() and raw.exists() and copy.stat().st_mtime >= raw.stat().st_mtime and made_with.exists()
            and json.loads(made_with.read_text(encoding="utf-8")) == settings):
        return copy
    state_dir.mkdir(parents=True, exist_ok=True)
    anonymize_file(raw, copy, key=key, k=k, schema=declared, link_stores=link_stores,
                   report_dir=state_dir / RunDir(state_dir).anonymization.name)
    write_json(made_with, settings)
    return copy


def _read_raw(path: Path) -> pd.DataFrame:
    """Every column as text, as the store exported it (nothing is parsed or altered)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found. Pass the raw event log (CSV or Parquet) to anonymize.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ConfigError(f"{path}: an anonymized federation reads a raw .csv or .parquet log.")


def _write_like(rows: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        rows.to_csv(path, index=False)
    else:
        rows.to_parquet(path, index=False)


def _file_name(store: str) -> str:
    return store_label(store)  # the name its client, ledger and reports carry too
