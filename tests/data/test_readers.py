"""Readers, loading and id maps, on tiny files written to tmp_path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedrec.data import BEAUTY, IdMap, Interactions, load_dataset
from fedrec.errors import DataError

HEADER = "user_id,item_id,timestamp"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def raw_sequences(data: Interactions) -> dict:
    """Each raw user id -> its raw item ids, in the order the data set keeps them."""
    return {
        data.users.to_raw([u])[0]: data.items.to_raw(seq).tolist()
        for u, seq in enumerate(data.sequences)
    }


# --- sequence text format -------------------------------------------------------------


def test_sequence_file_keeps_each_users_items_oldest_first(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n2 7 5 6 8\n")

    data = load_dataset(str(path))

    assert data.n_users == 2
    assert data.n_items == 4
    assert data.n_interactions == 7
    assert raw_sequences(data) == {1: [5, 6, 7], 2: [7, 5, 6, 8]}


def test_sequence_file_gives_dense_item_indices_from_one_and_users_from_zero(tmp_path):
    path = write(tmp_path / "seqs.txt", "10 300 20 100\n30 20 100 300\n")

    data = load_dataset(str(path))

    assert data.users.to_index([10, 30]).tolist() == [0, 1]
    assert data.items.to_index([20, 100, 300]).tolist() == [1, 2, 3]
    assert data.sequences[0].tolist() == [3, 1, 2]
    assert all(seq.dtype == np.int64 for seq in data.sequences)


def test_sequence_file_skips_blank_lines_and_accepts_tabs(tmp_path):
    path = write(tmp_path / "seqs.tsv", "1\t5\t6\t7\n\n   \n2 5  6\t8\n")

    data = load_dataset(str(path))

    assert raw_sequences(data) == {1: [5, 6, 7], 2: [5, 6, 8]}


def test_sequence_file_reads_the_item_attribute_sidecar_when_present(tmp_path):
    path = write(tmp_path / "shop.txt", "1 5 6 7\n2 5 6 7\n")
    (tmp_path / "shop_item2attributes.json").write_text(
        json.dumps({"5": [1, 2], "7": [3], "99": [4]}), encoding="utf-8"
    )

    data = load_dataset(str(path))

    attrs = data.item_attributes
    assert attrs is not None
    assert attrs.index.tolist() == data.items.to_index([5, 7]).tolist()  # unknown item 99 left out
    assert attrs.loc[data.items.to_index([5])[0], "attributes"] == [1, 2]
    assert attrs.loc[data.items.to_index([7])[0], "attributes"] == [3]


def test_sequence_file_without_a_sidecar_has_no_item_attributes(tmp_path):
    path = write(tmp_path / "shop.txt", "1 5 6 7\n2 5 6 7\n")

    data = load_dataset(str(path))

    assert data.item_attributes is None


def test_invalid_sidecar_json_raises_data_error_naming_the_sidecar(tmp_path):
    path = write(tmp_path / "shop.txt", "1 5 6 7\n2 5 6 7\n")
    sidecar = write(tmp_path / "shop_item2attributes.json", '{"5": ')

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    assert str(sidecar) in str(raised.value)
    assert "invalid JSON" in str(raised.value)


def test_sequence_file_records_its_path_as_source(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n")

    data = load_dataset(str(path))

    assert data.source == str(path)
    assert data.dropped == {}


# --- interaction logs (CSV / Parquet) -----------------------------------------------------


def test_csv_log_orders_each_users_rows_by_timestamp(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER}\n1,30,300\n2,10,5\n1,10,100\n2,30,7\n1,20,200\n2,20,6\n",
    )

    data = load_dataset(str(path))

    assert raw_sequences(data) == {1: [10, 20, 30], 2: [10, 20, 30]}


def test_csv_log_keeps_file_order_for_equal_timestamps(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER}\n1,30,1\n1,10,1\n1,20,1\n1,40,0\n")

    data = load_dataset(str(path))

    assert raw_sequences(data) == {1: [40, 30, 10, 20]}


def test_csv_log_sorts_iso_date_strings_in_time_order(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER}\nu1,a,2024-05-03\nu1,b,2023-12-31\nu1,c,2024-01-15\n",
    )

    data = load_dataset(str(path))

    assert raw_sequences(data) == {"u1": ["b", "c", "a"]}


def test_csv_log_accepts_date_only_and_date_time_iso_strings_in_one_column(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER}\nu1,a,2024-05-01T12:00:00\nu1,b,2024-05-01\nu1,c,2024-05-01T06:30:00Z\n",
    )

    data = load_dataset(str(path))

    assert raw_sequences(data) == {"u1": ["b", "c", "a"]}


def test_csv_log_maps_string_ids_in_sorted_order(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER}\nbob,pear,1\nbob,apple,2\nbob,fig,3\nann,fig,1\nann,pear,2\nann,apple,3\n",
    )

    data = load_dataset(str(path))

    assert data.users.raw.tolist() == ["ann", "bob"]
    assert data.items.raw.tolist() == ["apple", "fig", "pear"]
    assert data.sequences[data.users.to_index(["bob"])[0]].tolist() == [3, 1, 2]
    assert raw_sequences(data) == {"ann": ["fig", "pear", "apple"], "bob": ["pear", "apple", "fig"]}


def test_csv_log_ratings_follow_the_time_order_of_their_items(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER},rating\n1,10,3,5\n1,11,1,4\n1,12,2,3\n2,10,1,1\n2,11,2,2\n2,12,3,3\n",
    )

    data = load_dataset(str(path))

    assert data.ratings is not None
    assert [r.tolist() for r in data.ratings] == [[4.0, 3.0, 5.0], [1.0, 2.0, 3.0]]
    assert all(r.dtype == np.float32 for r in data.ratings)
    assert raw_sequences(data)[1] == [11, 12, 10]


def test_csv_log_without_rating_or_store_columns_has_neither(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER}\n1,10,1\n1,11,2\n1,12,3\n")

    data = load_dataset(str(path))

    assert data.ratings is None
    assert data.stores is None
    assert data.user_attributes is None
    assert data.item_attributes is None


def test_csv_log_assigns_each_user_the_store_of_most_of_their_rows(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER},store_id\n1,10,1,north\n1,11,2,north\n1,12,3,south\n2,10,1,south\n2,11,2,south\n2,12,3,south\n",
    )

    data = load_dataset(str(path))

    assert data.stores is not None
    assert data.stores.tolist() == ["north", "south"]


def test_csv_log_splits_extra_columns_into_user_and_item_attributes(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER},age,category\n"
        "u1,a,1,30,fruit\nu1,b,2,30,veg\nu1,c,3,30,fruit\n"
        "u2,a,1,41,fruit\nu2,b,2,41,veg\nu2,c,3,41,fruit\n",
    )

    data = load_dataset(str(path))

    assert data.user_attributes is not None and data.item_attributes is not None
    assert data.user_attributes.columns.tolist() == ["age"]
    assert data.item_attributes.columns.tolist() == ["category", "attributes"]  # + its ids for the attribute encoder
    u1, u2 = data.users.to_index(["u1", "u2"])
    assert data.user_attributes.loc[u1, "age"] == 30
    assert data.user_attributes.loc[u2, "age"] == 41
    a, b = data.items.to_index(["a", "b"])
    assert data.item_attributes.loc[a, "category"] == "fruit"
    assert data.item_attributes.loc[b, "category"] == "veg"


def test_log_reads_the_item_catalog_beside_it(tmp_path):
    """<stem>_catalog.csv adds the columns the log lacks (names, prices); ids match whether
    read as numbers in one file and text in the other; catalog rows of unseen items are dropped."""
    write(tmp_path / "log.csv", f"{HEADER},category\n" "u1,10,1,fruit\nu1,20,2,veg\nu1,10,3,fruit\n")
    pd.DataFrame({"item_id": ["10", "20", "30"], "name": ["Apple soap", "Kale mask", "Unsold"],  # ids as text here
                  "category": ["other", "veg", "x"], "price": [1.5, 2.5, 9.0]}).to_parquet(tmp_path / "log_catalog.parquet")

    data = load_dataset(str(tmp_path / "log.csv"))

    ten, twenty = data.items.to_index([10, 20])
    assert data.item_attributes.loc[ten, "name"] == "Apple soap" and data.item_attributes.loc[twenty, "price"] == 2.5
    assert data.item_attributes.loc[ten, "category"] == "fruit"  # the log's own column is kept
    assert len(data.item_attributes) == 2


def test_a_catalog_without_item_id_names_the_file_and_the_fix(tmp_path):
    write(tmp_path / "log.csv", f"{HEADER}\n" "u1,10,1\nu1,20,2\nu1,10,3\n")
    write(tmp_path / "log_catalog.csv", "sku,name\n10,Apple soap\n")

    with pytest.raises(DataError, match=r"log_catalog\.csv: an item catalog needs an item_id column"):
        load_dataset(str(tmp_path / "log.csv"))


def test_csv_log_ignores_and_records_columns_that_vary_within_users_and_items(tmp_path, caplog):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER},noise\nu1,a,1,1\nu1,b,2,2\nu1,c,3,3\nu2,a,1,4\nu2,b,2,5\nu2,c,3,6\n",
    )

    with caplog.at_level(logging.WARNING, logger="fedrec.data"):
        data = load_dataset(str(path))

    assert data.dropped["columns_ignored"] == ["noise"]
    assert data.user_attributes is None and data.item_attributes is None
    assert "noise" in caplog.text


def test_parquet_log_loads_like_the_same_csv(tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u2", "u1", "u2"],
            "item_id": ["x", "z", "x", "y", "y", "z"],
            "timestamp": [3, 30, 10, 2, 20, 1],
            "rating": [1.0, 5.0, 3.0, 2.0, 4.0, 3.0],
        }
    )
    parquet = tmp_path / "log.parquet"
    frame.to_parquet(parquet)
    csv = tmp_path / "log.csv"
    frame.to_csv(csv, index=False)

    from_parquet = load_dataset(str(parquet))
    from_csv = load_dataset(str(csv))

    assert raw_sequences(from_parquet) == {"u1": ["x", "y", "z"], "u2": ["z", "y", "x"]}
    assert raw_sequences(from_parquet) == raw_sequences(from_csv)
    assert [r.tolist() for r in from_parquet.ratings] == [[3.0, 4.0, 5.0], [3.0, 2.0, 1.0]]


def test_parquet_log_orders_rows_by_datetime_column(tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": [7, 7, 7],
            "item_id": [1, 2, 3],
            "timestamp": pd.to_datetime(["2024-03-01", "2024-01-01", "2024-02-01"]),
        }
    )
    path = tmp_path / "log.pq"
    frame.to_parquet(path)

    data = load_dataset(str(path))

    assert raw_sequences(data) == {7: [2, 3, 1]}


# --- id maps ---------------------------------------------------------------------------


def test_id_map_round_trips_raw_ids_through_indices():
    ids = IdMap.from_raw(["pear", "apple", "fig", "apple"], offset=1)

    indices = ids.to_index(["fig", "pear", "apple"])

    assert indices.tolist() == [2, 3, 1]
    assert ids.to_raw(indices).tolist() == ["fig", "pear", "apple"]
    assert ids.to_index(ids.to_raw([1, 2, 3])).tolist() == [1, 2, 3]
    assert len(ids) == 3


def test_id_map_keeps_numeric_ids_in_numeric_not_text_order():
    ids = IdMap.from_raw([10, 3, 200, 3], offset=1)

    assert ids.raw.tolist() == [3, 10, 200]
    assert ids.to_index([3, 10, 200]).tolist() == [1, 2, 3]


def test_id_map_keeps_first_seen_order_for_mixed_id_types():
    ids = IdMap.from_raw([5, "b", "a", 5])

    assert ids.raw.tolist() == [5, "b", "a"]
    assert ids.to_index(["a", 5]).tolist() == [2, 0]


def test_id_map_unknown_raw_id_raises_data_error_naming_the_id():
    ids = IdMap.from_raw(["a", "b"])

    with pytest.raises(DataError, match="'zz' is not in this data set's id map"):
        ids.to_index(["a", "zz"])


def test_id_map_index_below_the_offset_raises_data_error_with_the_valid_range():
    ids = IdMap.from_raw([4, 9], offset=1)

    with pytest.raises(DataError, match=r"valid indices are 1\.\.2"):
        ids.to_raw([0])


def test_id_map_index_past_the_end_raises_data_error():
    ids = IdMap.from_raw([4, 9], offset=1)

    with pytest.raises(DataError, match="index out of range"):
        ids.to_raw([3])


def test_interactions_stats_count_users_items_and_drops(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7 8\n2 5 6 7\n3 5\n")

    stats = load_dataset(str(path)).stats()

    assert stats["users"] == 2
    assert stats["items"] == 4
    assert stats["interactions"] == 7
    assert stats["mean_length"] == 3.5
    assert stats["max_length"] == 4
    assert stats["density"] == pytest.approx(7 / 8)
    assert stats["has_stores"] is False
    assert stats["dropped"] == {"short_users": 1, "short_user_interactions": 1}


# --- the embedded Beauty set -------------------------------------------------------------


def test_embedded_beauty_set_has_the_published_size():
    data = load_dataset(BEAUTY)

    assert data.source == BEAUTY
    assert data.n_users == 22_363
    assert data.n_items == 12_101
    assert data.n_interactions == 198_502
    assert data.dropped == {}


def test_embedded_beauty_item_ids_equal_their_dense_indices():
    data = load_dataset(BEAUTY)

    raw = np.arange(1, 12_102)

    assert data.items.to_index(raw).tolist() == raw.tolist()
    assert data.items.to_raw([1, 7, 12_101]).tolist() == [1, 7, 12_101]
    assert data.sequences[0].tolist() == [1, 2, 3, 4, 5]  # first line: "1 1 2 3 4 5"


def test_embedded_beauty_set_comes_with_item_attributes():
    data = load_dataset(BEAUTY)

    assert data.item_attributes is not None
    assert len(data.item_attributes) == data.n_items


# --- bad input -------------------------------------------------------------------------


def test_sequence_file_non_integer_id_names_the_line_and_token(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n\n2 5 x 7\n")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert message.startswith(f"{path}:3:")
    assert "'x' is not an integer id" in message


def test_sequence_file_duplicate_user_line_names_both_lines(tmp_path):
    path = write(tmp_path / "seqs.txt", "4 5 6 7\n8 5 6 7\n4 1 2 3\n")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert message.startswith(f"{path}:3:")
    assert "user 4 already has a line (1)" in message


def test_empty_sequence_file_raises_data_error_naming_the_file(tmp_path):
    path = write(tmp_path / "seqs.txt", "")

    with pytest.raises(DataError, match="the file is empty") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_sequence_file_of_blank_lines_raises_no_user_lines_found(tmp_path):
    path = write(tmp_path / "seqs.txt", "\n   \n\t\n")

    with pytest.raises(DataError, match="no user lines found") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_empty_csv_raises_data_error_naming_the_file(tmp_path):
    path = write(tmp_path / "log.csv", "")

    with pytest.raises(DataError, match="the file is empty") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_header_only_csv_raises_header_but_no_rows(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER}\n")

    with pytest.raises(DataError, match="has a header but no rows") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_csv_missing_timestamp_column_names_the_column(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id\n1,10\n1,11\n1,12\n")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert message.startswith(f"{path}: missing column(s) timestamp;")
    assert "found user_id, item_id" in message


def test_csv_missing_several_columns_names_each_of_them(tmp_path):
    path = write(tmp_path / "log.csv", "user,item_id\n1,10\n")

    with pytest.raises(DataError, match=r"missing column\(s\) user_id, timestamp;"):
        load_dataset(str(path))


def test_a_raw_shop_log_without_user_id_points_to_fedrec_anonymize(tmp_path):
    raw = write(tmp_path / "shop.csv", "customer_id,email,item_id,timestamp\nC1,a@b.example,10,1\n")
    with pytest.raises(DataError, match=r"raw shop log \(customer_id, email\): anonymize it first.*fedrec anonymize"):
        load_dataset(str(raw))
    plain = write(tmp_path / "log.csv", "user,item_id,timestamp\n1,10,1\n")  # no personal column: no such hint
    with pytest.raises(DataError) as raised:
        load_dataset(str(plain))
    assert "anonymize" not in str(raised.value)


def test_parquet_missing_item_column_names_the_column(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": [1, 1, 1], "timestamp": [1, 2, 3]}).to_parquet(path)

    with pytest.raises(DataError, match=r"missing column\(s\) item_id;") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_csv_empty_item_id_names_the_column_and_the_file_line(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER}\n1,10,1\n1,11,2\n1,,3\n1,13,4\n")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert str(path) in message
    assert "column 'item_id' has 1 empty/NaN value(s)" in message
    assert "line(s) [4]" in message


def test_csv_nan_timestamp_names_the_column(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER}\n1,10,NaN\n1,11,2\n1,12,\n")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert "column 'timestamp' has 2 empty/NaN value(s)" in message
    assert "line(s) [2, 4]" in message


def test_csv_nan_in_optional_rating_column_names_the_column(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER},rating\n1,10,1,5\n1,11,2,\n1,12,3,4\n")

    with pytest.raises(DataError, match=r"column 'rating' has 1 empty/NaN value\(s\), first at line\(s\) \[3\]"):
        load_dataset(str(path))


def test_parquet_nan_user_id_names_the_column_and_the_row(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame(
        {"user_id": [1.0, None, 1.0], "item_id": [10, 11, 12], "timestamp": [1, 2, 3]}
    ).to_parquet(path)

    with pytest.raises(DataError, match=r"column 'user_id' has 1 empty/NaN value\(s\), first at row\(s\) \[1\]"):
        load_dataset(str(path))


def test_csv_unparseable_timestamp_names_the_value_and_the_file_line(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER}\n1,10,2024-05-01\n1,11,2024-05-02\n1,12,next tuesday\n",
    )

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert message.startswith(f"{path}: timestamp 'next tuesday' (line 4)")
    assert "neither a number nor a date" in message


def test_parquet_unparseable_timestamp_names_the_row(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame(
        {"user_id": [1, 1, 1], "item_id": [10, 11, 12], "timestamp": ["2024-05-01", "soon", "2024-05-03"]}
    ).to_parquet(path)

    with pytest.raises(DataError, match=r"timestamp 'soon' \(row 1\)"):
        load_dataset(str(path))


def test_csv_non_numeric_rating_raises_data_error(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER},rating\n1,10,1,good\n1,11,2,bad\n1,12,3,ok\n")

    with pytest.raises(DataError, match="column 'rating' must be numeric"):
        load_dataset(str(path))


def test_unknown_file_suffix_raises_data_error_naming_the_file_and_suffix(tmp_path):
    path = write(tmp_path / "log.json", "[]")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path))

    message = str(raised.value)
    assert str(path) in message
    assert "unknown data format '.json'" in message


def test_path_without_suffix_raises_unknown_data_format(tmp_path):
    path = write(tmp_path / "interactions", "1 2 3 4\n")

    with pytest.raises(DataError, match=r"unknown data format '\(no suffix\)'"):
        load_dataset(str(path))


@pytest.mark.parametrize("name", ["missing.txt", "missing.csv", "missing.parquet"])
def test_missing_file_raises_data_error_naming_the_path(tmp_path, name):
    path = tmp_path / name

    with pytest.raises(DataError, match="file not found") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_file_that_is_not_parquet_raises_data_error_naming_the_file(tmp_path):
    path = tmp_path / "log.parquet"
    path.write_bytes(b"user_id,item_id,timestamp\n1,2,3\n")

    with pytest.raises(DataError, match="could not be read as Parquet") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_binary_sequence_file_raises_data_error_not_utf8(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_bytes(b"1 2 3\n\xff\xfe\x00\x01\n")

    with pytest.raises(DataError, match="not UTF-8 text"):
        load_dataset(str(path))


# --- users too short for leave-one-out --------------------------------------------------


def test_short_users_are_dropped_counted_and_logged_by_default(tmp_path, caplog):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n2 5 6\n3 5\n4 6 7 8 9\n")

    with caplog.at_level(logging.WARNING, logger="fedrec.data"):
        data = load_dataset(str(path))

    assert data.users.raw.tolist() == [1, 4]
    assert data.dropped == {"short_users": 2, "short_user_interactions": 3}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "fedrec.data"]
    assert len(warnings) == 1
    assert "dropped 2 of 4 users (3 interactions)" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()


def test_items_seen_only_by_dropped_users_leave_the_item_map(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n2 99 98\n")

    data = load_dataset(str(path))

    assert data.items.raw.tolist() == [5, 6, 7]


def test_short_csv_users_are_dropped_with_their_ratings_and_stores(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"{HEADER},rating,store_id\n"
        "a,1,1,1,s1\na,2,2,2,s1\n"
        "b,1,1,3,s2\nb,2,2,4,s2\nb,3,3,5,s2\n",
    )

    data = load_dataset(str(path))

    assert data.users.raw.tolist() == ["b"]
    assert data.dropped == {"short_users": 1, "short_user_interactions": 2}
    assert [r.tolist() for r in data.ratings] == [[3.0, 4.0, 5.0]]
    assert data.stores.tolist() == ["s2"]


def test_short_users_error_policy_raises_naming_the_first_short_line(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n2 5 6\n3 5\n")

    with pytest.raises(DataError) as raised:
        load_dataset(str(path), short_users="error")

    message = str(raised.value)
    assert message.startswith(f"{path}: 2 user(s) have fewer than 3 interactions")
    assert "first: line 2" in message


def test_short_users_error_policy_in_csv_names_the_first_short_user(tmp_path):
    path = write(tmp_path / "log.csv", f"{HEADER}\nann,1,1\nann,2,2\nann,3,3\nbob,1,1\n")

    with pytest.raises(DataError, match=r"first: user_id 'bob'"):
        load_dataset(str(path), short_users="error")


def test_all_users_short_raises_even_when_dropping(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6\n2 5\n")

    with pytest.raises(DataError, match="every user has fewer than 3 interactions") as raised:
        load_dataset(str(path))

    assert str(path) in str(raised.value)


def test_higher_min_interactions_drops_more_users(tmp_path):
    path = write(tmp_path / "seqs.txt", "1 5 6 7\n2 5 6 7 8 9\n")

    data = load_dataset(str(path), min_interactions=5)

    assert data.users.raw.tolist() == [2]
    assert data.dropped["short_users"] == 1
