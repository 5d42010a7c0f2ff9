"""The deployment key: private on disk, refused when it is not."""

from __future__ import annotations

import os
import stat

import pytest

from fedrec.anonymize import KEY_BYTES, key_id, load_key, make_key
from fedrec.errors import ConfigError


def test_a_new_key_file_is_readable_by_its_owner_only(tmp_path):
    path = make_key(tmp_path / "k")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(load_key(path)) == KEY_BYTES


def test_two_keys_differ(tmp_path):
    assert load_key(make_key(tmp_path / "a")) != load_key(make_key(tmp_path / "b"))


def test_an_existing_key_is_never_overwritten(tmp_path):
    path = make_key(tmp_path / "k")
    before = path.read_bytes()

    with pytest.raises(ConfigError, match="never overwritten"):
        make_key(path)
    assert path.read_bytes() == before


def test_a_group_readable_key_is_refused_with_chmod_as_the_fix(tmp_path):
    path = make_key(tmp_path / "k")
    os.chmod(path, 0o640)

    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(path)


def test_a_missing_key_is_refused_naming_the_command_that_makes_one(tmp_path):
    with pytest.raises(ConfigError, match="fedrec keys --out"):
        load_key(tmp_path / "absent.key")


def test_a_key_of_the_wrong_size_is_refused(tmp_path):
    path = tmp_path / "short.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"x" * 16)
    os.close(fd)

    with pytest.raises(ConfigError, match="16 bytes"):
        load_key(path)


def test_the_key_tag_names_the_key_without_containing_it(tmp_path):
    key = load_key(make_key(tmp_path / "k"))

    tag = key_id(key)

    assert tag == key_id(key) and key.hex()[:12] != tag and tag not in key.hex()
