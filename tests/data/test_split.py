"""Leave-one-out split (S3-Rec protocol) on tiny data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedrec.data import leave_one_out, load_dataset
from fedrec.data.interactions import build_interactions
from fedrec.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_last_item_is_the_test_target_and_second_last_the_validation_target(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 1 2 3 4 5\n2 5 4 3\n")))

    split = leave_one_out(data)

    assert split.test.targets.tolist() == [5, 3]
    assert split.valid.targets.tolist() == [4, 4]
    assert split.test.targets.dtype == np.int64


def test_train_keeps_everything_before_the_two_held_out_items(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 1 2 3 4 5\n2 5 4 3\n")))

    split = leave_one_out(data)

    assert [s.tolist() for s in split.train] == [[1, 2, 3], [5]]


def test_validation_history_is_the_sequence_without_its_last_two_items(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 1 2 3 4 5\n2 5 4 3\n")))

    split = leave_one_out(data)

    assert [h.tolist() for h in split.valid.histories] == [[1, 2, 3], [5]]


def test_test_history_is_the_sequence_without_its_last_item(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 1 2 3 4 5\n2 5 4 3\n")))

    split = leave_one_out(data)

    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3, 4], [5, 4]]


def test_every_user_is_evaluated_once_in_dense_order(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "30 1 2 3\n10 2 3 4\n20 3 4 5\n")))

    split = leave_one_out(data)

    assert split.n_users == 3
    assert split.valid.users.tolist() == [0, 1, 2]
    assert split.test.users.tolist() == [0, 1, 2]
    assert split.n_items == data.n_items == 5


def test_split_loses_no_interaction(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 1 2 3 4 5\n2 5 4 3\n3 2 2 2 2\n")))

    split = leave_one_out(data)

    for user, sequence in enumerate(data.sequences):
        rebuilt = [*split.train[user].tolist(), split.valid.targets[user], split.test.targets[user]]
        assert rebuilt == sequence.tolist()


def test_train_ratings_are_aligned_with_train_items(tmp_path):
    path = write(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp,rating\n"
        "1,a,4,4\n1,b,1,1\n1,c,3,3\n1,d,2,2\n1,e,5,5\n"
        "2,a,1,5\n2,b,2,4\n2,c,3,3\n",
    )
    data = load_dataset(str(path))

    split = leave_one_out(data)

    assert split.train_ratings is not None
    assert [r.tolist() for r in split.train_ratings] == [[1.0, 2.0, 3.0], [5.0]]
    assert [len(r) for r in split.train_ratings] == [len(s) for s in split.train]
    assert data.items.to_raw(split.train[0]).tolist() == ["b", "d", "c"]


def test_split_without_ratings_has_no_train_ratings(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 1 2 3\n")))

    split = leave_one_out(data)

    assert split.train_ratings is None


def test_user_with_exactly_three_items_trains_on_one(tmp_path):
    data = load_dataset(str(write(tmp_path / "seqs.txt", "1 7 8 9\n")))

    split = leave_one_out(data)

    assert [s.tolist() for s in split.train] == [[1]]
    assert split.valid.targets.tolist() == [2]
    assert split.test.targets.tolist() == [3]


def test_user_with_fewer_than_three_items_raises_data_error_naming_the_user():
    data = build_interactions([10, 20, 30], [[1, 2, 3], [1, 2, 3], [1, 2]], source="built in test")

    with pytest.raises(DataError) as raised:
        leave_one_out(data)

    message = str(raised.value)
    assert "1 user(s) have fewer than 3 interactions" in message
    assert "user index 2" in message


def test_user_with_no_items_raises_data_error():
    data = build_interactions([1, 2], [[], [4, 5, 6]], source="built in test")

    with pytest.raises(DataError, match="user index 0"):
        leave_one_out(data)
