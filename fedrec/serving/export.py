"""A release's sequence model as ONNX (``fedrec export RELEASE_DIR --out DIR``), for shops whose
stack is not Python: the scorer, its item index and catalog, and what a caller must know.

    model.onnx        input ``items``: int64 (batch, length), each row a basket of dense item
                      ids, oldest first, right-padded with 0; outputs, float32 (batch, n_items + 1),
                      column j = dense id j: ``scores`` (the model's, column 0 = -inf) and
                      ``unseen_scores`` (also -inf at every item of the row: what serving ranks)
    items.csv         dense id (``item``, a score column) -> the shop's ``item_id``, and the
                      catalog columns the release holds (name, brand, category, ...)
    popularity.json   the release's fallback ranking, for a basket with no known item
    metadata.json     inputs, outputs, padding, max_len, the release's verdict, fedrec's version
    README.md         the same for people; checksums.sha256 over every file

The graph does what ``ReleaseRecommender`` does between a basket and its ranking: it reads
each row's ``max_len`` most recent items (``model.history_length()``) and masks the whole
basket. The item head is the dense (dim, n_items + 1) table ``SequenceNet.scoring_item_logits``
scores with (the sparse item x bucket product has no ONNX form), plus the last item's
attribute affinity as one gather per attribute slot. A DP model's Opacus DPLSTM is swapped
for the nn.LSTM holding the same weights first (``SequenceNet.encoder(scoring=True)``).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedrec.errors import ConfigError, ModelError
from fedrec.models.base import Recommender
from fedrec.release.bundle import CHECKSUMS, checksums
from fedrec.release.gatekeeper import code_version
from fedrec.rundir import write_json, write_text
from fedrec.serving.release_loader import Release, open_release

logger = logging.getLogger(__name__)

INPUT, OUTPUTS = "items", ("scores", "unseen_scores")
EXTRA = ("onnx", "onnxscript", "onnxruntime")  # torch's ONNX exporter needs onnxscript; the check runs onnxruntime
CHECK_TOLERANCE = 1e-4  # absolute, on scores of magnitude ~1-10: float32 kernels differ by ~1e-6 (tests: 1e-5)


class OnnxScorer(nn.Module):
    """(B, L) right-padded baskets -> ((B, n_items + 1) scores, the same with the basket masked)."""

    def __init__(self, net: nn.Module, max_len: int) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).eval()
        if hasattr(self.net, "rnn"):  # a private DPLSTM (Python steps) -> nn.LSTM, same weights
            self.net.rnn = self.net.encoder(scoring=True)
        self.max_len = max_len
        with torch.no_grad():  # SequenceNet._scoring_head's table, from the same public item_logits
            nothing = torch.zeros(1, dtype=torch.int64)  # padding: no buckets, so no bonus
            offsets = self.net.item_logits(torch.zeros(1, self.net.output.in_features), nothing)[0]
            basis = torch.eye(self.net.output.in_features)
            weights = self.net.item_logits(basis, nothing.expand(len(basis))) - offsets
        self.register_buffer("weights", weights.contiguous())  # (dim, n_items + 1)
        self.register_buffer("offsets", offsets)  # (n_items + 1,)
        buckets = self.net.attribute_buckets
        # Items' bucket ids fill their slots from the left: only slots some item uses are read.
        self.slots = int((self.net.item_attributes > 0).any(0).sum()) if buckets else 0
        self.register_buffer("not_padding", (torch.arange(buckets + 1) > 0).float())  # bucket 0 is "none"

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = (items > 0).sum(1)  # (B,)
        # Each row's max_len most recent items, right-padded: what serving reads of a long basket.
        start = (lengths - self.max_len).clamp(min=0)
        positions = start.unsqueeze(1) + torch.arange(self.max_len, device=items.device)  # (B, max_len)
        recent = items.gather(1, positions.clamp(max=items.shape[1] - 1)) * (positions < lengths.unsqueeze(1))
        last = (lengths - start - 1).clamp(min=0).unsqueeze(1)  # (B, 1); an empty basket reads padding, as score()
        states = self.net.hidden(recent)  # (B, max_len, dim)
        state = states.gather(1, last.unsqueeze(-1).expand(-1, 1, states.shape[-1])).squeeze(1)  # (B, dim)
        scores = torch.addmm(self.offsets, state, self.weights)  # (B, n_items + 1)
        if self.slots:
            scores = scores + self._affinity(recent.gather(1, last).squeeze(1))
        scores = scores.index_fill(1, torch.zeros(1, dtype=torch.int64, device=items.device), float("-inf"))
        return scores, scores.scatter(1, items, float("-inf"))

    def _affinity(self, last_items: torch.Tensor) -> torch.Tensor:
        """(B,) last items -> (B, n_items + 1): each item's summed affinity for the buckets it
        shares with the last item (``scoring_item_logits``' bonus, as gathers, not a sparse product)."""
        net = self.net
        last_buckets = net.item_attributes[last_items]  # (B, MAX_ATTRIBUTES), 0 = none
        affinity = net.attribute_affinity.weight[last_buckets, 0]
        bonus = affinity.new_zeros((last_items.shape[0], net.attribute_buckets + 1)).scatter_add(1, last_buckets, affinity)
        bonus = bonus * self.not_padding  # (B, buckets + 1)
        by_item = bonus.index_select(1, net.item_attributes[:, 0])
        for slot in range(1, self.slots):
            by_item = by_item + bonus.index_select(1, net.item_attributes[:, slot])
        return by_item


@dataclass(frozen=True)
class Export:
    """What ``export`` wrote: the folder, the model kind, its items, and the self-check."""

    folder: Path
    model: str
    n_items: int
    max_len: int
    max_abs_diff: float  # ONNX against the model's own scores on the check baskets


def export(release_dir: str | Path, out: str | Path) -> Export:
    """Open the release at ``release_dir`` (as ``fedrec serve`` does: verdict and checksums
    checked) and write its scorer to the new folder ``out``."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"fedrec export needs {', '.join(missing)}, which are not installed: "
                          'pip install "fedrec[export]" (onnx, onnxscript, onnxruntime).')
    return export_release(open_release(release_dir), Path(out))


def export_release(release: Release, out: Path) -> Export:
    """``release``'s scorer, item index and catalog into the new folder ``out``."""
    net = exportable_net(release.model)
    max_len = int(release.model.history_length())
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; an export never overwrites. Pick a new --out.")
    out.mkdir(parents=True, exist_ok=True)
    try:
        scorer = OnnxScorer(net, max_len).eval()
        opset = _write_onnx(scorer, out / "model.onnx")
        diff = _self_check(out / "model.onnx", release.model)
        release.items.sort_values("item").to_csv(out / "items.csv", index=False)
        shutil.copyfile(release.folder / "popularity.json", out / "popularity.json")
        metadata = _metadata(release, net, max_len, opset, diff)
        write_json(out / "metadata.json", metadata)
        write_text(out / "README.md", _readme(metadata))
        (out / CHECKSUMS).write_text(checksums(out), encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    logger.info("export: %s model, %d items -> %s (ONNX within %.1e of the model)", release.model.name,
                net.n_items, out / "model.onnx", diff)
    return Export(out, release.model.name, net.n_items, max_len, diff)


def exportable_net(model: Recommender) -> nn.Module:
    """The model's sequence network (a model that says it predicts the next item, from its
    ``net``); other models are refused with what to do instead."""
    net = getattr(model, "net", None)
    if not model.predicts_next_item or net is None:
        raise ConfigError(
            f"a {model.name} model cannot be exported: fedrec export writes the sequence models (lstm, mlp), whose "
            "network reads a basket and scores every item. MF needs a user vector folded in from the basket, and "
            "pop, itemknn and userknn have no network. Serve this release with fedrec serve, or train --model lstm "
            "or --model mlp to export.")
    return net


def _write_onnx(scorer: OnnxScorer, path: Path) -> int:
    """Write the graph; returns its ONNX opset."""
    import onnx

    example = torch.tensor([[1, 2, 0], [1, 0, 0]], dtype=torch.int64).clamp(max=scorer.net.n_items)
    dims = {INPUT: {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}}
    # torch.export's warnings and torch.onnx's log lines (every torchvision op it skips) are about
    # its own internals, nothing a user can act on: kept at debug level, off the terminal.
    torch_onnx = logging.getLogger("torch.onnx")
    level = torch_onnx.level
    torch_onnx.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            program = torch.onnx.export(scorer, (example,), input_names=[INPUT], output_names=list(OUTPUTS),
                                        dynamic_shapes=dims, external_data=False, verbose=False)
    finally:
        torch_onnx.setLevel(level)
    for warning in caught:
        logger.debug("export: torch.onnx: %s", warning.message)
    program.save(str(path), external_data=False)
    return next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))


def check_baskets(n_items: int, max_len: int, count: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Random baskets of 1 to 2 * max_len items (some longer than the model reads)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(1, n_items + 1, size=int(rng.integers(1, 2 * max_len + 1))) for _ in range(count)]


def right_padded(baskets: list[np.ndarray]) -> np.ndarray:
    """(B, longest) int64, 0 after each basket's items: the graph's input."""
    rows = np.zeros((len(baskets), max(1, max(map(len, baskets)))), dtype=np.int64)
    for row, basket in enumerate(baskets):
        rows[row, : len(basket)] = basket
    return rows


def _self_check(path: Path, model: Recommender) -> float:
    """The written file run by onnxruntime against the model's own scores; a gap above
    CHECK_TOLERANCE means the exporter changed the math: refused, the folder removed."""
    import onnxruntime

    baskets = check_baskets(model.n_items, model.history_length())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores = session.run([OUTPUTS[0]], {INPUT: right_padded(baskets)})[0][:, 1:]
    with torch.inference_mode():
        expected = model.score(np.zeros(len(baskets), dtype=np.int64), baskets)[:, 1:].float().numpy()
    diff = float(np.abs(scores - expected).max())
    if not diff <= CHECK_TOLERANCE:
        raise ModelError(f"the ONNX scorer differs from the {model.name} model by {diff:.2e} (at most "
                         f"{CHECK_TOLERANCE:.0e} expected); nothing was exported. Report it with torch's and onnx's versions.")
    return diff


def _metadata(release: Release, net: nn.Module, max_len: int, opset: int, diff: float) -> dict[str, Any]:
    n = net.n_items
    return {
        "format": "fedrec export 1",
        "fedrec_version": code_version(),  # {"fedrec": version, "commit", "dirty"}, as the release records it
        "model": release.model.name,
        "n_items": n,
        "max_len": max_len,
        "inputs": {INPUT: {"type": "int64", "shape": ["batch", "length"], "padding": "right, with 0",
                           "meaning": "each row one basket of dense item ids (items.csv's item), oldest first; the "
                           f"model reads the {max_len} most recent, and masks all of them in unseen_scores"}},
        "outputs": {
            OUTPUTS[0]: {"type": "float32", "shape": ["batch", n + 1],
                         "meaning": "column j: the model's score for dense id j (higher is better); column 0 "
                         "(padding) is -inf"},
            OUTPUTS[1]: {"type": "float32", "shape": ["batch", n + 1],
                         "meaning": "scores with every item of the row's basket at -inf: what fedrec serve ranks "
                         "(exclude_seen, its default)"},
        },
        "ranking": "take the k highest scores; ties (items a DP model never learnt apart) go first to the items "
                   "earlier in popularity.json, then to smaller dense ids, as fedrec serve breaks them",
        "empty_basket": "answer with popularity.json's items, as fedrec serve does (the graph scores a row "
                        "of only 0s as the model scores an empty history, which serving never shows)",
        "files": {"model.onnx": "the scorer", "items.csv": "item (dense id) -> item_id (the shop's) and the catalog",
                  "popularity.json": "the fallback ranking", CHECKSUMS: "sha256sum -c checksums.sha256"},
        "onnx_opset": opset,
        "checked": {"baskets": 64, "max_abs_diff": diff},
        "release": {"folder": str(release.folder), "verdict": release.verdict.get("verdict"),
                    "override": release.verdict.get("override"), "model_sha256": release.model_sha256,
                    "model_card": release.card.get("model_details", {}).get("overview")},
    }


def _readme(metadata: dict[str, Any]) -> str:
    outputs = "\n".join(f"- `{name}`: {o['type']} {o['shape']}, {o['meaning']}" for name, o in metadata["outputs"].items())
    (name, given), = metadata["inputs"].items()
    release = metadata["release"]
    return (f"# {metadata['model']} scorer exported by fedrec {metadata['fedrec_version']['fedrec']}\n\n"
            f"From the release {release['folder']} (verdict: {release['verdict']}). {metadata['n_items']} items; "
            f"the model reads the {metadata['max_len']} most recent items of a basket.\n\n"
            f"Input `{name}`: {given['type']} {given['shape']}, padding {given['padding']}: {given['meaning']}.\n\n"
            f"Outputs:\n{outputs}\n\nRanking: {metadata['ranking']}.\nAn empty basket: {metadata['empty_basket']}.\n\n"
            "Files: " + "; ".join(f"`{f}`: {what}" for f, what in metadata["files"].items()) + ".\n"
            "metadata.json says all of this for programs; fedrec's docs/export.md has an example.\n")
