"""Brand / category exposure share against target share, and AWRF, on hand-made lists."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedrec.audit.exposure import exposure_sums
from fedrec.audit.providers import finish_provider_exposure, js_divergence
from fedrec.errors import DataError

# Items 1, 2 belong to brand A, item 3 to brand B, item 4 to none (index 0 is padding).
PROVIDER = np.array([-1, 0, 0, 1, -1])
TARGET = np.array([0, 3, 1, 4, 2])  # interactions: A 3 + 1 = 4, B 4 -> target shares 1/2, 1/2
TOP = np.array([[1, 3], [3, 4]])
W1 = 1 / math.log2(3)


def finish(top=TOP, **overrides):
    sums = exposure_sums(top, [np.array([1])] * len(top), n_items=4)
    arguments = {"item_provider": PROVIDER, "target": TARGET, "labels": ("A", "B"), "name": "brand", **overrides}
    return finish_provider_exposure(sums, **arguments)


def test_exposure_share_ratio_and_difference_per_brand():
    # Exposure: item 1: 1 (top slot), item 3: W1 + 1, item 4: W1 (no brand).
    # A = 1, B = 1 + W1, shares over the branded exposure 2 + W1.
    report = finish()

    a, b = report["providers"]["A"], report["providers"]["B"]
    assert a["exposure_share"] == pytest.approx(1 / (2 + W1))  # 0.3801
    assert b["exposure_share"] == pytest.approx((1 + W1) / (2 + W1))
    assert a["target_share"] == b["target_share"] == pytest.approx(0.5)
    assert a["ratio"] == pytest.approx(2 / (2 + W1))  # 0.7602: under-exposed
    assert b["difference"] == pytest.approx((1 + W1) / (2 + W1) - 0.5)
    assert report["unassigned_exposure_share"] == pytest.approx(W1 / (2 + 2 * W1))
    assert report["most_over_exposed"]["provider"] == "B"
    assert report["most_under_exposed"]["provider"] == "A"


def test_awrf_is_one_minus_the_jensen_shannon_divergence_in_bits():
    e = np.array([1, 1 + W1]) / (2 + W1)
    m = (e + 0.5) / 2
    jsd = 0.5 * sum(e * np.log2(e / m)) + 0.5 * sum(0.5 * np.log2(0.5 / m))  # 0.0104

    assert finish()["awrf"] == pytest.approx(1 - jsd)
    assert finish()["awrf"] != pytest.approx(1 - math.sqrt(jsd))  # not 1 - JS distance


def test_awrf_is_one_when_exposure_matches_target_and_zero_when_disjoint():
    assert js_divergence(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == pytest.approx(0.0)
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    only_a = finish(top=np.array([[1, 2]]), target=np.array([0, 0, 0, 5, 0]))  # A exposed, B targeted

    assert only_a["awrf"] == pytest.approx(0.0)


def test_brands_below_the_minimum_target_share_are_not_ranked():
    target = np.array([0, 1, 0, 99, 0])  # A has 1% of the interactions and 38% of the exposure

    assert finish(target=target)["most_over_exposed"]["provider"] == "A"
    assert finish(target=target, min_target_share=0.05)["most_over_exposed"]["provider"] == "B"


def test_a_provider_map_of_the_wrong_shape_is_refused():
    with pytest.raises(DataError, match="shape"):
        finish(item_provider=np.array([0, 1]))


def test_the_report_is_json():
    report = finish()

    assert json.loads(json.dumps(report, allow_nan=False)) == report
