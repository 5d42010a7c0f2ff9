"""`fedrec synth`, `fedrec keys` and `fedrec anonymize` as a store's data team runs them:
real processes, a ~100k-row synthetic log, and every kind of bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pycanon import anonymity

from fedrec.cli import main

DIRECT = ("customer_id", "loyalty_id", "name", "email", "phone", "street_address", "device_ip")
QUASI = ["store_id", "age_band", "postcode_prefix", "gender", "city"]


def fedrec(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, "-q", *args], capture_output=True, text=True, timeout=600)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A ~100k-row synthetic log (11,300 customers over 6 stores) and a key."""
    folder = tmp_path_factory.mktemp("shop")
    made = fedrec("synth", "--stores", "6", "--users", "11300", "--seed", "1", "--out", str(folder / "raw.parquet"))
    assert made.returncode == 0, made.stderr
    keyed = fedrec("keys", "--out", str(folder / "store.key"))
    assert keyed.returncode == 0, keyed.stderr
    return folder / "raw.parquet", folder / "store.key"


def test_synth_then_anonymize_leaves_no_identifier_and_k_holds(shop, tmp_path):
    raw_path, key = shop
    before = digest(raw_path)
    out = tmp_path / "anon.parquet"

    result = fedrec("anonymize", str(raw_path), str(out), "--key", str(key), "--k", "5")

    assert result.returncode == 0, result.stderr
    raw = pd.read_parquet(raw_path)
    assert len(raw) >= 95_000
    anonymized = pd.read_parquet(out)
    cells = set(anonymized.astype(str).to_numpy().ravel())
    for column in DIRECT:
        leaked = set(raw[column].astype(str)) & cells
        assert not leaked, f"{column}: {sorted(leaked)[:3]}"
    users = anonymized.drop_duplicates("user_id").reset_index(drop=True)
    assert anonymity.k_anonymity(users, [c for c in QUASI if c in users.columns]) >= 5
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    report = json.loads((tmp_path / "anon_anonymization" / "report.json").read_text())
    assert report["rows_out"] == len(anonymized) and report["k_achieved"] >= 5
    assert (tmp_path / "anon_anonymization" / "report.md").exists()
    assert digest(raw_path) == before


def bad_inputs(folder: Path, raw: Path, key: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, what the message must say)."""
    readable = folder / "readable.key"
    readable.write_bytes(key.read_bytes())
    readable.chmod(0o644)
    schema = folder / "schema.json"
    schema.write_text(json.dumps({"direct_identifiers": ["no_such_column"]}))
    empty = folder / "empty.csv"
    empty.write_text("")
    leaky = folder / "leaky.csv"
    frame = pd.read_parquet(raw).head(300).rename(columns={"email": "contact"})
    frame.to_csv(leaky, index=False)
    return {
        "missing key": ([str(raw), "--key", str(folder / "nope.key")], "fedrec keys"),
        "world-readable key": ([str(raw), "--key", str(readable)], "chmod 600"),
        "k above the customers": ([str(raw), "--key", str(key), "--k", "10000000"], "k"),
        "unknown schema column": ([str(raw), "--key", str(key), "--schema", str(schema)], "no_such_column"),
        "undeclared personal data": ([str(leaky), "--key", str(key)], "contact"),
        "empty file": ([str(empty), "--key", str(key)], "empty"),
    }


@pytest.mark.parametrize("case", ["missing key", "world-readable key", "k above the customers", "unknown schema column",
                                  "undeclared personal data", "empty file"])
def test_bad_input_exits_2_with_one_message_and_touches_nothing(shop, tmp_path, case, capsys):
    raw_path, key = shop
    arguments, expected = bad_inputs(tmp_path, raw_path, key)[case]
    source = Path(arguments[0])
    before = digest(source)
    out = tmp_path / "out.parquet"

    status = main(["-q", "anonymize", arguments[0], str(out), *arguments[1:]])  # the command's own entry point

    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("fedrec: error:") and expected in err and err.count("fedrec:") == 1  # one message
    assert "Traceback" not in err and "usage:" not in err
    assert digest(source) == before
    assert not out.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".out*"))
