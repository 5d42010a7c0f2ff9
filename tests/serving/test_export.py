"""fedrec export: the ONNX scorer ranks 1,000 baskets as fedrec serve does, from the exported
files alone (items.csv, popularity.json, metadata.json), for the LSTM, the MLP and a DP LSTM;
a model holding Opacus' DPLSTM exports the same graph; what cannot be exported is refused.

Scores are compared with an absolute tolerance: they are logits of magnitude ~1-10 whose
float32 spacing is ~1e-6, and many lie near 0, where a relative gap means nothing.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import fedrec
from fedrec import api, cli
from fedrec.errors import ConfigError
from fedrec.release.bundle import verify_checksums
from fedrec.serving import ReleaseRecommender, open_release
from fedrec.serving import export as export_module
from tests.serving.conftest import LOOSE_GATE

ort = pytest.importorskip("onnxruntime", reason='fedrec export needs its extra: pip install -e ".[export]"')
pytest.importorskip("onnxscript", reason='fedrec export needs its extra: pip install -e ".[export]"')

BASKETS = 1000
TOLERANCE = 1e-5  # absolute, on logits (see the module docstring)


@pytest.fixture(scope="module")
def dp_release(shop, tmp_path_factory):
    """A DP-SGD LSTM (vocabulary of 3,000 of the shop's items, attribute buckets), released."""
    out = tmp_path_factory.mktemp("export_runs") / "dp-lstm"
    fedrec.train(out, model="lstm", data=str(shop), release_gate=False, dp="local", target_epsilon=8.0, epochs=1,
                 dim=8, threads=1)
    assert api.audit(out, **LOOSE_GATE)["verdict"] == "passed"
    return out / "release"


@pytest.fixture(scope="module")
def exported(releases, dp_release, tmp_path_factory):
    """kind -> (its release, its export folder), exported on first use."""
    root, made = tmp_path_factory.mktemp("exports"), {}

    def get(kind: str):
        if kind not in made:
            release = dp_release if kind == "dp-lstm" else releases(kind)
            made[kind] = release, api.export(release, root / kind).folder
        return made[kind]

    return get


class ExportedScorer:
    """A caller that has only the export folder, as a shop's non-Python service would."""

    def __init__(self, folder) -> None:
        self.session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        self.metadata = json.loads((folder / "metadata.json").read_text())
        items = pd.read_csv(folder / "items.csv", dtype={"item_id": str}, keep_default_na=False)
        self.dense = dict(zip(items["item_id"], items["item"]))
        popular = json.loads((folder / "popularity.json").read_text())["items"]
        # Ties go to popularity.json's order, then to the smaller dense id (metadata.json's "ranking").
        self.tie_rank = np.arange(len(items) + 1) + len(popular)
        self.tie_rank[popular] = np.arange(len(popular))

    def unseen_scores(self, baskets: list[list[str]]) -> np.ndarray:
        rows = export_module.right_padded([np.array([self.dense[i] for i in b], dtype=np.int64) for b in baskets])
        return self.session.run(["unseen_scores"], {"items": rows})[0]

    def top(self, scores: np.ndarray, k: int) -> np.ndarray:
        return np.lexsort((self.tie_rank, -scores))[:k]


def random_baskets(catalog_ids: list[str], max_len: int, seed: int) -> list[list[str]]:
    """Random shop ids, 1 to 2 * max_len of them (some longer than the model reads; repeats allowed)."""
    rng = np.random.default_rng(seed)
    return [list(rng.choice(catalog_ids, size=int(rng.integers(1, 2 * max_len + 1)))) for _ in range(BASKETS)]


@pytest.mark.parametrize("kind", ["lstm", "mlp", "dp-lstm"])
def test_the_exported_scorer_ranks_1000_baskets_as_fedrec_serve_does(exported, kind):
    release_dir, folder = exported(kind)
    service = ReleaseRecommender(open_release(release_dir))
    caller = ExportedScorer(folder)
    baskets = random_baskets(service.catalog.raw[1:], caller.metadata["max_len"], seed=7)

    served = [service.recommend(basket, k=10)["items"] for basket in baskets]
    scores = np.concatenate([caller.unseen_scores(baskets[i : i + 250]) for i in range(0, BASKETS, 250)])

    served_ids = np.array([[caller.dense[item["item_id"]] for item in answer] for answer in served])
    served_scores = np.array([[item["score"] for item in answer] for answer in served])
    onnx_ids = np.stack([caller.top(row, 10) for row in scores])
    gap = np.abs(np.take_along_axis(scores, served_ids, axis=1) - served_scores)
    assert gap.max() <= TOLERANCE, f"{kind}: ONNX scores of serve's top-10 differ by up to {gap.max():.2e}"
    same = (onnx_ids == served_ids).all(axis=1)
    # Where the lists differ, only near-ties may have swapped: both lists score alike, rank by rank.
    onnx_top = np.take_along_axis(scores, onnx_ids, axis=1)
    served_sorted = -np.sort(-np.take_along_axis(scores, served_ids, axis=1), axis=1)
    assert np.abs(onnx_top[~same] - served_sorted[~same]).max(initial=0.0) <= TOLERANCE
    assert same.sum() >= 0.99 * BASKETS, f"{kind}: the same top-10 for only {same.sum()} of {BASKETS} baskets"


@pytest.mark.parametrize("kind", ["lstm", "mlp", "dp-lstm"])
def test_every_exported_score_equals_the_models_own_within_1e_5(exported, kind):
    release_dir, folder = exported(kind)
    model = open_release(release_dir).model
    max_len = model.history_length()
    rng = np.random.default_rng(3)
    baskets = [rng.integers(1, model.n_items + 1, size=int(rng.integers(1, 2 * max_len + 1))) for _ in range(BASKETS)]
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

    exported_scores = session.run(["scores"], {"items": export_module.right_padded(baskets)})[0]
    with torch.inference_mode():
        own = model.score(np.zeros(BASKETS, dtype=np.int64), baskets).numpy()

    assert np.isneginf(exported_scores[:, 0]).all()  # padding is never an item
    assert np.abs(exported_scores[:, 1:] - own[:, 1:]).max() <= TOLERANCE


def test_a_model_holding_opacus_dplstm_exports_the_same_scorer(exported, dp_release, tmp_path):
    from fedrec.privacy.opacus_layers import make_private_layers
    from opacus.layers import DPLSTM

    _, plain_folder = exported("dp-lstm")
    release = open_release(dp_release)
    make_private_layers(release.model.net)  # as DP training leaves it: Opacus' DPLSTM, the same weights
    assert isinstance(release.model.net.rnn, DPLSTM)

    swapped = export_module.export_release(release, tmp_path / "swapped")

    baskets = export_module.right_padded(export_module.check_baskets(release.model.n_items, 20, count=200, seed=5))
    plain = ort.InferenceSession(str(plain_folder / "model.onnx")).run(["scores"], {"items": baskets})[0]
    private = ort.InferenceSession(str(swapped.folder / "model.onnx")).run(["scores"], {"items": baskets})[0]
    assert np.array_equal(plain, private)
    assert isinstance(release.model.net.rnn, DPLSTM)  # the release's own model is left as it was


def test_the_export_folder_holds_the_item_index_catalog_and_metadata(exported):
    release_dir, folder = exported("lstm")
    release = open_release(release_dir)

    items = pd.read_csv(folder / "items.csv", dtype={"item_id": str})
    metadata = json.loads((folder / "metadata.json").read_text())

    assert items["item"].tolist() == list(range(1, release.model.n_items + 1))
    assert items["item_id"].tolist() == release.items.sort_values("item")["item_id"].astype(str).tolist()
    assert {"name", "brand", "category"} <= set(items.columns)
    assert metadata["max_len"] == release.model.history_length() == 50
    assert metadata["release"]["verdict"] == "passed" and metadata["fedrec_version"]["fedrec"] == fedrec.__version__
    assert set(metadata["outputs"]) == {"scores", "unseen_scores"} and "right" in metadata["inputs"]["items"]["padding"]
    assert verify_checksums(folder) == []


def test_a_popularity_release_is_refused_with_exit_status_2_naming_the_sequence_models(releases, tmp_path, capsys):
    status = cli.main(["export", str(releases("pop")), "--out", str(tmp_path / "pop")])

    assert status == 2
    assert "lstm, mlp" in capsys.readouterr().err
    assert not (tmp_path / "pop").exists()


def test_without_the_export_extra_the_command_names_it(releases, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export_module, "EXTRA", (*export_module.EXTRA, "fedrec_no_such_module"))

    status = cli.main(["export", str(releases("lstm")), "--out", str(tmp_path / "lstm")])

    assert status == 2
    assert 'pip install "fedrec[export]"' in capsys.readouterr().err


def test_an_export_never_overwrites_a_folder(exported, tmp_path):
    release_dir, _ = exported("mlp")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")

    with pytest.raises(ConfigError, match="never overwrites"):
        api.export(release_dir, tmp_path / "taken")
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"


def test_the_python_example_of_docs_export_md_answers_as_fedrec_serve(exported, capsys):
    release_dir, folder = exported("lstm")
    page = (Path(__file__).parents[2] / "docs" / "export.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    assert 'folder = "runs/main/export"' in example
    service = ReleaseRecommender(open_release(release_dir))

    exec(example.replace('"runs/main/export"', repr(str(folder))), {})

    printed = [ast.literal_eval(line) for line in capsys.readouterr().out.splitlines()]
    ids = service.catalog.raw
    assert printed == [[i["item_id"] for i in service.recommend(basket, k=10)["items"]]
                       for basket in ([ids[1], ids[2]], [ids[3]])]
