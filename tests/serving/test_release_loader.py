"""Only a verified, passed (or overridden) release is served: anything else is refused with
a ConfigError naming the problem and the fix."""

from __future__ import annotations

import json
import shutil

import pytest

from fedrec.errors import ConfigError
from fedrec.release.bundle import CHECKSUMS, checksums
from fedrec.serving import open_release, serve
from fedrec.serving.launch import API_KEY_FILE_ENV, RELEASE_ENV, app_from_env


@pytest.fixture(scope="module")
def release(releases):
    return releases("itemknn")


def copy_of(release, tmp_path):
    return shutil.copytree(release, tmp_path / "release")


def test_a_release_opens_and_a_run_directory_stands_for_its_release(release):
    opened = open_release(release)
    via_run = open_release(release.parent)

    assert opened.model.name == "itemknn" and opened.verdict["verdict"] == "passed"
    assert len(opened.items) == opened.model.n_items
    assert via_run.folder == release and via_run.checksums == opened.checksums


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no such folder.*release"):
        open_release(tmp_path / "nowhere")


def test_a_folder_that_is_not_a_release_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(ConfigError, match=r"not a fedrec release \(missing model.pt, items.parquet"):
        open_release(tmp_path)


def test_a_run_without_a_release_is_told_how_to_release_it(release, tmp_path):
    run = shutil.copytree(release.parent, tmp_path / "run", ignore=shutil.ignore_patterns("release"))

    with pytest.raises(ConfigError, match="never released: run `fedrec audit"):
        open_release(run)


def test_a_tampered_release_is_refused_naming_the_file(release, tmp_path):
    folder = copy_of(release, tmp_path)
    data = bytearray((folder / "items.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "items.parquet").write_bytes(bytes(data))

    with pytest.raises(ConfigError, match=r"items.parquet do not match checksums.sha256.*Copy the whole release folder"):
        open_release(folder)


def test_a_file_added_or_removed_after_release_is_refused(release, tmp_path):
    folder = copy_of(release, tmp_path)
    (folder / "popularity.png").unlink(missing_ok=True)
    (folder / "extra.json").write_text("{}")

    with pytest.raises(ConfigError, match="extra.json"):
        open_release(folder)


def test_a_blocked_verdict_is_refused_even_with_matching_checksums(release, tmp_path):
    folder = copy_of(release, tmp_path)
    verdict = json.loads((folder / "verdict.json").read_text())
    (folder / "verdict.json").write_text(json.dumps({**verdict, "verdict": "blocked"}))
    (folder / CHECKSUMS).write_text(checksums(folder))

    with pytest.raises(ConfigError, match="verdict is 'blocked'.*--override-reason"):
        open_release(folder)


def test_serve_refuses_a_bad_folder_before_binding_a_port(tmp_path):
    with pytest.raises(ConfigError, match="not a fedrec release"):
        serve(tmp_path, port=1)  # a port no test may bind: serve must fail before trying


@pytest.mark.parametrize(("options", "named"), [({"workers": 0}, "--workers 0"), ({"torch_threads": 0}, "--torch-threads 0"),
                                                ({"workers": 2, "api_key": "k"}, "--api-key-file")])
def test_serve_refuses_bad_worker_settings_before_binding_a_port(release, options, named):
    with pytest.raises(ConfigError, match=named):
        serve(release, port=1, **options)


def test_the_uvicorn_factory_reads_the_release_and_key_file_from_the_environment(release, tmp_path, monkeypatch):
    (tmp_path / "key").write_text("  secret\n")
    monkeypatch.setenv(RELEASE_ENV, str(release))
    monkeypatch.setenv(API_KEY_FILE_ENV, str(tmp_path / "key"))
    assert app_from_env().state.fedrec.release_dir == release

    (tmp_path / "key").write_text("\n")
    with pytest.raises(ConfigError, match="API key file is empty"):
        app_from_env()
    monkeypatch.delenv(RELEASE_ENV)
    with pytest.raises(ConfigError, match=RELEASE_ENV):
        app_from_env()
