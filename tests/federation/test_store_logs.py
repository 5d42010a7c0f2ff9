"""A deployed store's own anonymized copy (fedrec.federation.store_logs.anonymize_own_log): made
again whenever what shapes it changed, not only the raw log."""

from __future__ import annotations

import json

import pandas as pd

import fedrec
from fedrec.federation.store_logs import OWN_COPY_SETTINGS, anonymize_own_log


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
