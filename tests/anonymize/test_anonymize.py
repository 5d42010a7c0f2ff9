"""A store's raw log in, a k-anonymous pseudonymous log out that fedrec's reader accepts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from pycanon import anonymity

from fedrec.anonymize import anonymize_file, anonymize_frame, load_key, make_key
from fedrec.anonymize import writer
from fedrec.anonymize import tables
from fedrec.anonymize.detect import analyze_samples
from fedrec.anonymize.pseudonyms import pseudonymize
from fedrec.data import load_dataset
from fedrec.errors import ConfigError, DataError

from .conftest import DIRECT, raw_log

QI_OUT = ["store_id", "age_band", "postcode_prefix", "gender", "city"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def per_user(out: pd.DataFrame) -> pd.DataFrame:
    return out.drop_duplicates("user_id").reset_index(drop=True)  # pycanon indexes rows by position


def pseudonym_of(key: bytes, customer: str, store: str | None) -> str:
    names, _ = pseudonymize(pa.array([customer]), None if store is None else pa.array([store]), key=key)
    return names[0].as_py()


def test_no_identifier_of_the_input_survives_in_any_cell(raw, key):
    out, _ = anonymize_frame(raw, key=key, k=5)

    cells = set(out.astype(str).to_numpy().ravel())
    text = "\n".join(cells)
    for column in (*DIRECT, "street_address", "postcode", "birth_date"):
        leaked = [v for v in raw[column].astype(str).unique() if v in cells or (len(v) > 6 and v in text)]
        assert not leaked, f"{column}: {leaked[:3]}"


def test_the_output_is_k_anonymous_per_user_by_pycanon(raw, key):
    out, report = anonymize_frame(raw, key=key, k=5)

    assert anonymity.k_anonymity(per_user(out), QI_OUT) >= 5
    assert report.k_achieved >= 5


def test_l_diversity_of_skin_type_holds_by_pycanon(raw, key):
    out, report = anonymize_frame(raw, key=key, k=4, l=2)

    assert anonymity.l_diversity(per_user(out), QI_OUT, ["skin_type"]) >= 2
    assert report.l_achieved >= 2


def test_pseudonyms_are_stable_under_one_key_and_change_with_another(raw, key, tmp_path):
    first, _ = anonymize_frame(raw, key=key, k=5)
    again, _ = anonymize_frame(raw, key=key, k=5)
    other, _ = anonymize_frame(raw, key=load_key(make_key(tmp_path / "other.key")), k=5)

    assert first["user_id"].tolist() == again["user_id"].tolist()
    assert not set(first["user_id"]) & set(other["user_id"])


def test_a_customer_of_two_stores_gets_two_unrelated_pseudonyms_by_default(raw, key):
    out, _ = anonymize_frame(raw, key=key, k=5)

    shared = raw[~raw["opt_out"]].groupby("customer_id")["store_id"].unique()
    shared = shared[shared.map(len) == 2]
    assert len(shared) > 0
    for customer, stores in shared.items():
        names = {pseudonym_of(key, customer, s) for s in stores}
        assert len(names) == 2 and names <= set(out["user_id"])
        assert all(out.loc[out["user_id"] == n, "store_id"].nunique() == 1 for n in names)


def test_linked_stores_give_one_pseudonym_per_customer(raw, key):
    out, report = anonymize_frame(raw, key=key, k=5, link_stores=True)

    staying = raw.loc[~raw.groupby("customer_id")["opt_out"].transform("any"), "customer_id"].unique()
    assert out["user_id"].nunique() == len(staying) == report.users_out
    assert set(out["user_id"]) == {pseudonym_of(key, c, None) for c in staying}


def test_opted_out_customers_leave_no_row(raw, key):
    out, report = anonymize_frame(raw, key=key, k=5)

    gone = raw[raw.groupby("customer_id")["opt_out"].transform("any")]
    assert len(gone) > 0
    names = {pseudonym_of(key, c, s) for c, s in zip(gone["customer_id"], gone["store_id"])}
    assert not names & set(out["user_id"])
    assert len(out) == len(raw) - len(gone) == report.rows_out


def test_each_customers_events_keep_their_time_order(raw, key):
    out, _ = anonymize_frame(raw, key=key, k=5)

    staying = raw[~raw.groupby("customer_id")["opt_out"].transform("any")]
    for (customer, store), rows in staying.groupby(["customer_id", "store_id"]):
        expected = rows.assign(t=pd.to_datetime(rows["timestamp"])).sort_values("t", kind="stable")
        got = out[out["user_id"] == pseudonym_of(key, customer, store)]
        assert got["item_id"].tolist() == expected["item_id"].tolist()
        assert got["timestamp"].tolist() == expected["t"].dt.strftime("%Y-%m-%d").tolist()


def test_the_reports_numbers_add_up(raw, key, tmp_path):
    raw.to_parquet(tmp_path / "raw.parquet", index=False)

    report = anonymize_file(tmp_path / "raw.parquet", tmp_path / "out.parquet", key=key, k=5,
                            report_dir=tmp_path / "anonymization")

    saved = json.loads((tmp_path / "anonymization" / "report.json").read_text())
    assert saved["rows_in"] == len(raw) == report.rows_out + report.rows_opted_out
    assert saved["customers_in"] == raw["customer_id"].nunique() == report.customers_out + report.customers_opted_out
    assert sum(b["users"] for b in report.classes["histogram"].values()) == report.users_out
    assert all(sum(g["levels"].values()) == report.users_out for g in report.generalised.values())
    assert report.classes["min"] == report.k_achieved >= 5
    assert report.suppressed_users <= report.users_out
    assert "Purchase sequences identify people" in (tmp_path / "anonymization" / "report.md").read_text()


def test_the_key_appears_in_no_output_or_report(raw, tmp_path):
    key = load_key(make_key(tmp_path / "k"))
    raw.to_csv(tmp_path / "raw.csv", index=False)

    anonymize_file(tmp_path / "raw.csv", tmp_path / "out.csv", key=key, k=5, report_dir=tmp_path / "report")

    for path in [tmp_path / "out.csv", *(tmp_path / "report").iterdir()]:
        content = path.read_bytes()
        assert key not in content and key.hex().encode() not in content


@pytest.mark.parametrize(("source", "target"), [("csv", "parquet"), ("parquet", "csv"), ("parquet", "parquet")])
def test_the_output_loads_with_fedrecs_reader(raw, key, tmp_path, source, target):
    src = tmp_path / f"raw.{source}"
    raw.to_csv(src, index=False) if source == "csv" else raw.to_parquet(src, index=False)

    report = anonymize_file(src, tmp_path / f"out.{target}", key=key, k=5)

    data = load_dataset(str(tmp_path / f"out.{target}"))
    assert data.n_interactions == report.rows_out and data.n_users == report.users_out


def test_the_input_file_is_never_changed(raw, key, tmp_path):
    raw.to_csv(tmp_path / "raw.csv", index=False)
    before = digest(tmp_path / "raw.csv")

    anonymize_file(tmp_path / "raw.csv", tmp_path / "out.parquet", key=key, k=5)
    with pytest.raises(ConfigError):
        anonymize_file(tmp_path / "raw.csv", tmp_path / "raw.csv", key=key, k=5)

    assert digest(tmp_path / "raw.csv") == before


def test_a_run_that_fails_while_writing_leaves_no_output(raw, key, tmp_path, monkeypatch):
    raw.to_parquet(tmp_path / "raw.parquet", index=False)
    monkeypatch.setattr(writer, "BUCKET_ROWS", 50)  # several buckets, so several writes
    writes = []

    def fail_on_second(self, part):
        writes.append(part.num_rows)
        if len(writes) == 2:
            raise OSError("disk full")
        original(self, part)

    original = writer.TableSink.write
    monkeypatch.setattr(writer.TableSink, "write", fail_on_second)

    with pytest.raises(OSError, match="disk full"):
        anonymize_file(tmp_path / "raw.parquet", tmp_path / "out.parquet", key=key, k=5)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.parquet"]


def test_a_refused_run_leaves_an_earlier_output_as_it_was(raw, key, tmp_path):
    raw.to_parquet(tmp_path / "raw.parquet", index=False)
    anonymize_file(tmp_path / "raw.parquet", tmp_path / "out.parquet", key=key, k=5)
    before = digest(tmp_path / "out.parquet")

    with pytest.raises(ConfigError, match="larger than"):
        anonymize_file(tmp_path / "raw.parquet", tmp_path / "out.parquet", key=key, k=10_000)

    assert digest(tmp_path / "out.parquet") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "raw.parquet"]


def test_streaming_in_small_batches_and_buckets_gives_the_same_output(raw, key, tmp_path, monkeypatch):
    raw.to_parquet(tmp_path / "raw.parquet", index=False)
    anonymize_file(tmp_path / "raw.parquet", tmp_path / "whole.parquet", key=key, k=5)
    monkeypatch.setattr(tables, "BATCH_ROWS", 37)
    monkeypatch.setattr(writer, "BUCKET_ROWS", 60)

    anonymize_file(tmp_path / "raw.parquet", tmp_path / "streamed.parquet", key=key, k=5)

    assert pd.read_parquet(tmp_path / "streamed.parquet").equals(pd.read_parquet(tmp_path / "whole.parquet"))


def test_file_and_frame_give_the_same_rows(raw, key, tmp_path):
    raw.to_parquet(tmp_path / "raw.parquet", index=False)

    anonymize_file(tmp_path / "raw.parquet", tmp_path / "out.parquet", key=key, k=5)
    out, _ = anonymize_frame(raw, key=key, k=5)

    assert pd.read_parquet(tmp_path / "out.parquet").equals(out)


def test_k_larger_than_the_customers_is_refused(raw, key):
    with pytest.raises(ConfigError, match="larger than the"):
        anonymize_frame(raw, key=key, k=1000)


def test_an_undeclared_column_of_emails_is_refused_naming_it_and_the_fix(raw, key):
    frame = raw.assign(contact=raw["email"])

    with pytest.raises(DataError, match=r"(?s)'contact': looks like personal data \(EMAIL_ADDRESS.*"
                                         r"\{\"direct_identifiers\": \[\"contact\"\]\}"):
        anonymize_frame(frame, key=key, k=5)


def test_a_declared_column_is_kept_even_if_it_looks_like_a_phone_number(raw, key):
    frame = raw.assign(barcode=[f"0770090{i % 10_000:04d}" for i in range(len(raw))])

    out, report = anonymize_frame(frame, key=key, k=5, schema={"keep": ["barcode"]})

    assert "barcode" in out.columns and report.detections.get("barcode", {}).get("PHONE_NUMBER")


def test_a_schema_naming_an_unknown_column_is_refused(raw, key, tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"direct_identifiers": ["mail"]}))

    with pytest.raises(ConfigError, match="'mail'"):
        anonymize_frame(raw, key=key, schema=path)


def test_an_empty_file_and_a_header_alone_are_refused(key, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("customer_id,item_id,timestamp\n")

    with pytest.raises(DataError, match="empty"):
        anonymize_file(tmp_path / "empty.csv", tmp_path / "out.csv", key=key)
    with pytest.raises(DataError, match="no rows"):
        anonymize_file(tmp_path / "header.csv", tmp_path / "out.csv", key=key)
    assert not (tmp_path / "out.csv").exists()


def test_scrubbed_notes_are_kept_without_contacts(raw, key):
    out, report = anonymize_frame(raw, key=key, k=5, scrub_text=True)

    notes = out["order_note"].dropna().unique().tolist()
    assert any("[number]" in n or "[email]" in n for n in notes)
    assert analyze_samples({"order_note": notes}) == {}
    assert report.free_text["action"] == "scrubbed"


def test_free_text_is_dropped_by_default(raw, key):
    out, report = anonymize_frame(raw, key=key, k=5)

    assert "order_note" not in out.columns and "order_note" in report.dropped


def test_ages_are_banded_from_a_stated_reference_date(key):
    raw = raw_log(customers=60, stores=1, opt_out_share=0.0, seed=4)

    out, report = anonymize_frame(raw, key=key, k=2, reference_date="2030-01-01", schema={"keep": ["city"]})

    assert report.settings["reference_date"] == "2030-01-01"
    assert set(out["age_band"]) <= {"*", "80+"} | {f"{a}-{a + w - 1}" for w in (10, 20, 40) for a in range(0, 80, w)}


def test_rows_come_out_grouped_by_user(raw, key):
    out, _ = anonymize_frame(raw, key=key, k=5)

    runs = (out["user_id"] != out["user_id"].shift()).sum()
    assert runs == out["user_id"].nunique()


def test_csv_read_in_small_blocks_gives_the_same_output(raw, key, tmp_path, monkeypatch):
    raw.to_csv(tmp_path / "raw.csv", index=False)
    anonymize_file(tmp_path / "raw.csv", tmp_path / "whole.csv", key=key, k=5)
    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 4096)

    anonymize_file(tmp_path / "raw.csv", tmp_path / "blocks.csv", key=key, k=5)

    assert (tmp_path / "blocks.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_customers_without_consent_are_removed(raw, key):
    frame = raw.drop(columns="opt_out").assign(consent=raw["customer_id"].str[-1] != "7")

    out, report = anonymize_frame(frame, key=key, k=5)

    refused = frame.loc[~frame["consent"], "customer_id"].unique()
    assert report.customers_opted_out == len(refused) > 0
    assert report.rows_out == len(frame[frame["consent"]]) == len(out)


def test_integer_ids_and_epoch_times_are_accepted(key):
    rng = __import__("numpy").random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 40, 400), "item_id": rng.integers(0, 30, 400),
                          "timestamp": 1_700_000_000 + rng.integers(0, 10**7, 400), "store_id": 7,
                          "gender": rng.choice(["F", "M"], 400)})

    out, report = anonymize_frame(frame, key=key, k=3)

    assert report.users_out == 40 and out["user_id"].str.len().eq(24).all()
    assert out["timestamp"].str.match(r"^202[34]-\d\d-\d\d$").all()


def test_a_synthetic_chain_log_anonymizes_end_to_end(key, tmp_path):
    synth = pytest.importorskip("fedrec.data.synth")
    log = synth.synthesize(stores=2, users=400, seed=1)
    src, _ = synth.write_synth(log, tmp_path / "shop.parquet")

    report = anonymize_file(src, tmp_path / "out.parquet", key=key, k=5)

    out = pd.read_parquet(tmp_path / "out.parquet")
    assert anonymity.k_anonymity(per_user(out), QI_OUT) >= 5
    cells = set(out.astype(str).to_numpy().ravel())
    assert not cells & set(log.events["email"]) and not cells & set(log.events["customer_id"])
    assert report.customers_opted_out == int(log.customers["opt_out"].sum())
    assert load_dataset(str(tmp_path / "out.parquet")).n_interactions == report.rows_out


def test_a_csv_with_a_broken_row_is_refused_without_output(raw, key, tmp_path):
    raw.to_csv(tmp_path / "raw.csv", index=False)
    with open(tmp_path / "raw.csv", "a", encoding="utf-8") as handle:
        handle.write("C1,too,few\n")

    with pytest.raises(DataError, match="could not be read"):
        anonymize_file(tmp_path / "raw.csv", tmp_path / "out.csv", key=key)
    assert not (tmp_path / "out.csv").exists()
