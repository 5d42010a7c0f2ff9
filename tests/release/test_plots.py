"""The audit's pictures, drawn from a small audit document built by the real audit maths."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from fedrec.audit import exposure_sums, finish_group_utility, finish_popularity, group_utility_sums
from fedrec.audit.gate import gate
from fedrec.config import AuditConfig
from fedrec.release.plots import write_audit_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def document() -> dict:
    """Forty users over a 30-item catalog; stores "big" (24 users) and "small" (6, suppressed)
    and "mid" (10), the lists leaning on the popular items."""
    rng = np.random.default_rng(0)
    n_users, n_items, k = 40, 30, 5
    ranks = rng.integers(0, 12, n_users)
    stores = np.array(["big"] * 24 + ["mid"] * 10 + ["small"] * 6)
    keys = [f"cust-{u}" for u in range(n_users)]
    config = AuditConfig(top_k=k, min_group_size=8, n_boot=20)
    store_sums = group_utility_sums(ranks, stores, keys, labels=("big", "mid", "small"), name="store", k=k, n_boot=20)
    weights = 1.0 / np.arange(1, n_items + 1)
    top = np.stack([rng.choice(np.arange(1, n_items + 1), k, replace=False, p=weights / weights.sum())
                    for _ in range(n_users)])
    histories = [rng.integers(1, n_items + 1, int(rng.integers(2, 8))) for _ in range(n_users)]
    popularity = np.bincount(np.concatenate(histories), minlength=n_items + 1)
    audits = {
        "utility": {"k": k, "users": n_users, f"hr@{k}": float((ranks < k).mean()), f"popularity_baseline_hr@{k}": 0.1},
        "popularity": finish_popularity(exposure_sums(top, histories, n_items=n_items), popularity=popularity),
        "groups": {"store": finish_group_utility(store_sums, min_group_size=config.min_group_size)},
    }
    return {"config": config.to_dict(), **gate(audits, config), **audits}


def assert_png(path, *, min_side: int = 200) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side


def test_every_picture_is_drawn_as_a_png(document, tmp_path):
    assert document["groups"]["store"]["suppressed"] == ["small"]  # the panel names it

    drawn = write_audit_plots(document, tmp_path / "audit")

    assert set(drawn) == {"group_utility", "exposure_curve", "popularity"}
    for name, path in drawn.items():
        assert path == tmp_path / "audit" / f"{name}.png"
        assert_png(path)
    assert sorted(p.name for p in (tmp_path / "audit").iterdir()) == sorted(f"{n}.png" for n in drawn)  # no temp left


def test_absent_sections_skip_their_pictures(document, tmp_path):
    k = document["popularity"]["k"]
    no_groups = {**document, "groups": {}}
    no_popularity = {key: value for key, value in document.items() if key != "popularity"}
    no_slots = {**document, "popularity": {**document["popularity"], f"exposure_curve@{k}": None,
                                           f"popularity_deciles@{k}": {"items": [3] * 10, "recommended_share": None,
                                                                       "consumed_share": None}}}

    assert set(write_audit_plots(no_groups, tmp_path / "a")) == {"exposure_curve", "popularity"}
    assert set(write_audit_plots(no_popularity, tmp_path / "b")) == {"group_utility"}
    assert set(write_audit_plots(no_slots, tmp_path / "c")) == {"group_utility"}
    assert write_audit_plots({}, tmp_path / "d") == {} and not (tmp_path / "d").exists()


def test_a_grouping_with_every_group_suppressed_and_no_gate_still_gets_its_panel(document, tmp_path):
    lonely = {**document["groups"]["store"], "groups": {}, "suppressed": ["big", "mid", "small"], "gaps": {}}
    ungated = {**document, "config": {**document["config"], "min_group_ratio": None}, "checks": [],
               "groups": {**document["groups"], "city": lonely}}

    drawn = write_audit_plots(ungated, tmp_path)

    assert_png(drawn["group_utility"])
