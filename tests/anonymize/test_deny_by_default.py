"""Deny by default (issue 32): a column no schema declares and no name recognises is published
only when the log shows it is an item or store attribute; every other one stops the run with
the schema lines that would declare it, or is dropped when the schema says so."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from pycanon import anonymity

import fedrec
from fedrec.anonymize import anonymize_frame, draft_schema, load_key
from fedrec.anonymize.shapes import value_shape
from fedrec.cli import main
from fedrec.errors import DataError

OPAQUE = {"name": "field_1", "street_address": "field_2", "postcode": "field_3", "birth_date": "field_4",
          "skin_type": "tier"}
GUESSED = {"direct_identifiers": ["field_1", "field_2"], "quasi_identifiers": ["field_3", "field_4", "tier"],
           "keep": ["zahlungsart"], "pseudonymise": ["bestellnummer"],
           "hierarchies": {"field_3": "prefix", "field_4": "age"}}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """fedrec synth's log (two stores) with its personal columns under names that say nothing,
    an item attribute and a store attribute under unknown names, and two unknown event fields."""
    folder = tmp_path_factory.mktemp("deny")
    raw, _ = fedrec.synth(folder / "raw.parquet", stores=2, users=500, seed=11)
    frame = pd.read_parquet(raw)
    rng = np.random.default_rng(0)
    frame = frame.rename(columns={**OPAQUE, "brand": "marque"}).assign(
        filiale=frame["store_id"].map(lambda s: f"Filiale {s[-1]}"),  # fixed by the store
        zahlungsart=rng.choice(["karte", "rechnung", "paypal"], len(frame)),  # varies per event, few values
        bestellnummer=[f"B{i:07d}" for i in range(len(frame))],  # varies per event, an id
    )
    path = folder / "opaque.parquet"
    frame.to_parquet(path, index=False)
    key = fedrec.make_key(folder / "k.key")
    return folder, path, frame, key


@pytest.fixture(scope="module")
def key_bytes(shop):
    return load_key(shop[3])


def test_a_value_shape_keeps_the_form_and_never_the_characters():
    assert value_shape("NG14 4LH") == "AA99 9AA"
    assert value_shape("Jana Nováková") == "Aaaa Aaaaaaaa"
    assert value_shape("Hauptstraße 123, Berlin") == "Aaaaaaaaaaa 999,..."
    assert value_shape("1984-03-02") == "9999-99-99"


def test_every_column_that_may_describe_a_person_is_refused_in_one_message_with_the_lines_that_declare_it(
        shop, tmp_path, capsys):
    _, path, _, key = shop
    out = tmp_path / "out.parquet"

    status = main(["-q", "anonymize", str(path), str(out), "--key", str(key)])

    err = capsys.readouterr().err
    assert status == 2 and not out.exists()
    for column in ("field_1", "field_2", "field_3", "field_4", "tier", "zahlungsart", "bestellnummer"):
        assert f"'{column}'" in err, column
    for column in ("marque", "filiale", "region", "event_type", "price"):  # attributes and known event fields pass
        assert f"'{column}'" not in err, column
    assert "constant per customer" in err and "varies from event to event" in err
    suggested = json.loads(err.split("as guessed (review each):\n", 1)[1].splitlines()[0])
    assert suggested == GUESSED
    assert "'AA9 9AA'" in err or "'AA99 9AA'" in err  # the postcodes' shape...
    frame = shop[2]
    assert not any(v in err for v in frame["field_3"].unique())  # ...never a postcode itself


def test_with_the_drafted_schema_no_identifier_comes_out_and_k_holds_over_every_quasi_identifier(shop, tmp_path):
    _, path, frame, key = shop
    draft = tmp_path / "schema.json"
    assert main(["-q", "anonymize", str(path), "--write-schema", str(draft)]) == 0
    document = json.loads(draft.read_text())
    assert set(document["_why"]) >= {"field_1", "field_2", "field_3", "field_4", "tier", "marque", "filiale"}

    report = fedrec.anonymize_log(path, tmp_path / "out.parquet", key=key, k=5, schema=draft)

    out = pd.read_parquet(tmp_path / "out.parquet")
    cells = set(out.astype(str).to_numpy().ravel())
    for column in ("field_1", "field_2", "field_3", "field_4", "email", "phone", "bestellnummer"):
        assert not cells & set(frame[column].astype(str)), column
    quasi = ["store_id", *(info["output"] for info in report["generalised"].values())]
    assert set(quasi) >= {"store_id", "field_3_prefix", "age_band", "tier", "city", "gender"}
    assert anonymity.k_anonymity(out.drop_duplicates("user_id").reset_index(drop=True), quasi) >= 5
    assert "its values read as POSTCODE" in report["generalised"]["field_3"]["identified"]
    assert {"marque", "filiale"} <= set(out.columns)


def test_item_and_store_attributes_under_unknown_names_are_published_and_the_report_says_why(shop, key_bytes):
    _, _, frame, _ = shop
    key = key_bytes
    columns = ["customer_id", "store_id", "timestamp", "item_id", "marque", "filiale"]

    out, report = anonymize_frame(frame[columns], key=key, k=5)

    assert report.undeclared_published == {"marque": "fixed by the item, and customers' rows differ",
                                           "filiale": "fixed by the store"}
    assert set(out["marque"]) == set(frame["marque"])


def test_a_column_fixed_by_the_item_is_refused_when_no_customer_has_two_rows(shop, key_bytes):
    _, _, frame, _ = shop
    key = key_bytes
    once = frame.drop_duplicates("customer_id")[["customer_id", "store_id", "timestamp", "item_id", "marque"]]

    with pytest.raises(DataError, match=r"'marque': constant per customer"):
        anonymize_frame(once, key=key, k=5)


def test_a_schema_that_drops_the_undeclared_drops_what_would_be_refused_and_nothing_else(shop, key_bytes):
    _, _, frame, _ = shop
    key = key_bytes

    out, report = anonymize_frame(frame, key=key, k=5, schema={"undeclared": "drop"})

    refused = {"field_1", "field_2", "field_3", "field_4", "tier", "zahlungsart", "bestellnummer"}
    assert not refused & set(out.columns) and refused <= set(report.dropped)
    assert {"marque", "filiale", "event_type"} <= set(out.columns)


def test_a_pseudonymised_column_keeps_equal_values_equal_within_a_store_and_shows_no_raw_value(shop, key_bytes):
    _, _, frame, _ = shop
    key = key_bytes
    orders = frame.assign(bestellnummer=[f"B{i // 3:06d}" for i in range(len(frame))])  # three rows per order
    schema = {"undeclared": "drop", "pseudonymise": ["bestellnummer"]}

    out, _ = anonymize_frame(orders, key=key, k=5, schema=schema)

    assert all(re.fullmatch(r"[0-9a-f]{24}", v) for v in out["bestellnummer"])
    assert not set(out["bestellnummer"]) & set(orders["bestellnummer"])
    kept = orders[~orders["opt_out"]]
    assert out.groupby("store_id")["bestellnummer"].nunique().sum() == kept.groupby("store_id")["bestellnummer"].nunique().sum()


def test_a_draft_never_replaces_a_file(shop, tmp_path, capsys):
    _, path, _, _ = shop
    existing = tmp_path / "schema.json"
    existing.write_text('{"keep": ["marque"]}')

    assert main(["-q", "anonymize", str(path), "--write-schema", str(existing)]) == 2
    assert "exists" in capsys.readouterr().err and existing.read_text() == '{"keep": ["marque"]}'


def test_the_draft_of_a_synth_log_declares_nothing_it_would_refuse(tmp_path):
    raw, _ = fedrec.synth(tmp_path / "raw.parquet", stores=3, users=300, seed=2)

    document = draft_schema(raw)

    assert all(not why.startswith(("constant per customer", "varies", "looks like")) for why in document["_why"].values())
