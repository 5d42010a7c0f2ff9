"""ARP against consumed items, long-tail share, coverage and exposure Gini on hand-made lists."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedrec.audit.exposure import exposure_sums, gini, lorenz_curve
from fedrec.audit.popularity import finish_popularity, interaction_counts, short_head

# Five items; popularity 10, 6, 2, 1, 1 (index 0 is padding). 80% of 20 is 16: the short
# head is items 1 and 2 (10 + 6 = 16), the tail items 3, 4, 5.
POPULARITY = np.array([0, 10, 6, 2, 1, 1])
TOP = np.array([[1, 3], [1, 2], [4, 1]])  # three users, top-2 lists
HISTORIES = [np.array([1, 2]), np.array([3]), np.array([2, 2, 5])]
W1 = 1 / math.log2(3)  # exposure of the second slot; the first slot has 1


@pytest.fixture
def report():
    return finish_popularity(exposure_sums(TOP, HISTORIES, n_items=5), popularity=POPULARITY)


def test_the_short_head_holds_eighty_percent_of_popularity():
    assert short_head(POPULARITY).tolist() == [1, 2]
    # Ties go by item id; the item that crosses the line belongs to the head.
    assert short_head(np.array([0, 4, 4, 2]), share=0.4).tolist() == [1]
    assert short_head(np.array([0, 4, 4, 2]), share=0.5).tolist() == [1, 2]


def test_arp_is_the_mean_popularity_of_the_recommended_items(report):
    # Per user: (10 + 2) / 2 = 6, (10 + 6) / 2 = 8, (1 + 10) / 2 = 5.5; mean 6.5.
    assert report["arp@2"] == pytest.approx(6.5)


def test_arp_of_consumed_items_weights_users_equally(report):
    # Per user: (10 + 6) / 2 = 8, 2, (6 + 6 + 1) / 3 = 13/3; mean 43/9.
    assert report["arp_consumed"] == pytest.approx(43 / 9)
    assert report["arp_ratio"] == pytest.approx(6.5 / (43 / 9))


def test_aplt_is_the_share_of_slots_in_the_long_tail(report):
    assert report["aplt@2"] == pytest.approx(2 / 6)  # item 3 (user 1) and item 4 (user 3)
    assert report["head_items"] == 2


def test_coverage_counts_distinct_recommended_items_over_the_catalog(report):
    assert report["coverage@2"] == pytest.approx(4 / 5)  # items 1..4, not 5


def test_exposure_gini_is_the_usual_gini_of_position_weighted_exposure(report):
    # Exposure: item 1: 1 + 1 + W1, items 2, 3: W1, item 4: 1, item 5: 0. Sorted ascending
    # 0, W1, W1, 1, 2 + W1 with coefficients (2i - n - 1) = -4, -2, 0, 2, 4, over n x total.
    expected = (-2 * W1 + 2 * 1 + 4 * (2 + W1)) / (5 * (3 + 3 * W1))  # 0.4603
    assert report["gini_exposure@2"] == pytest.approx(expected)
    assert report["gini_exposure@2"] != pytest.approx(1 - expected)  # Elliot's "Gini" is 1 - Gini
    # Unweighted slot counts 0, 1, 1, 1, 3: (-2 + 0 + 2 + 12) / (5 x 6), RecBole's GiniIndex.
    assert report["gini_count@2"] == pytest.approx(12 / 30)


def test_gini_is_zero_for_equal_exposure_and_near_one_when_one_item_has_all():
    assert gini(np.array([2.0, 2.0, 2.0, 2.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 5.0])) == pytest.approx(3 / 4)  # (n - 1) / n; Elliot: 1/4


def test_interaction_counts_count_every_interaction():
    counts = interaction_counts(HISTORIES, n_items=5)

    assert counts.tolist() == [0, 1, 3, 1, 0, 1]  # item 2: three interactions by two users


def test_empty_slots_expose_nothing_and_count_for_nothing():
    sums = exposure_sums(np.array([[3, 0]]), [np.array([1])], n_items=5)

    report = finish_popularity(sums, popularity=POPULARITY)

    assert sums.slots == 1 and sums.exposure[0] == 0.0
    assert report["aplt@2"] == 1.0 and report["arp@2"] == 2.0


def test_a_given_head_replaces_the_computed_one_and_noisy_negatives_read_as_zero():
    noisy = np.array([0, 10.5, -3.0, 2, 1, 1])

    report = finish_popularity(exposure_sums(TOP, HISTORIES, n_items=5), popularity=noisy, head=[1],
                               popularity_source="dp-noisy-counts")

    assert report["aplt@2"] == pytest.approx(3 / 6)  # items 3, 2, 4 are tail now
    assert report["arp@2"] == pytest.approx((10.5 * 3 + 0 + 2 + 1) / 6)
    assert report["head_share"] is None and report["popularity_source"] == "dp-noisy-counts"
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def curve_gini(curve: dict) -> float:
    """1 - 2 x the trapezoid area under a reported Lorenz curve."""
    x, y = np.array(curve["item_share"]), np.array(curve["exposure_share"])
    return float(1 - np.sum(np.diff(x) * (y[1:] + y[:-1])))


def test_the_exposure_curve_of_the_report_has_the_reported_gini(report):
    curve = report["exposure_curve@2"]

    # Five items, all kept; sorted exposure 0, W1, W1, 1, 2 + W1 over 3 + 3 W1.
    assert curve["item_share"] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1])
    total = 3 + 3 * W1
    assert curve["exposure_share"] == pytest.approx([0, 0, W1 / total, 2 * W1 / total, (1 + 2 * W1) / total, 1])
    assert curve_gini(curve) == pytest.approx(report["gini_exposure@2"], abs=1e-5)


def test_equal_exposure_gives_the_diagonal():
    top = np.array([[1, 2], [2, 1]])  # each item once first, once second: equal exposure

    curve = finish_popularity(exposure_sums(top, [np.array([1])] * 2, n_items=2),
                              popularity=np.array([0, 1, 1]))["exposure_curve@2"]

    assert curve["exposure_share"] == pytest.approx(curve["item_share"])
    assert curve_gini(curve) == pytest.approx(0.0)


def test_all_exposure_on_one_item_hugs_the_axis_and_keeps_its_corner():
    n = 1000
    exposure = np.zeros(n)
    exposure[-1] = 3.0

    x, y = lorenz_curve(exposure)

    assert np.all(y[x < 1] == 0.0) and y[-1] == 1.0
    assert x[-2] == pytest.approx((n - 1) / n)  # the corner: a chord from 0.975 would miss Gini by 1/40
    assert len(x) <= 3 * 40 + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_a_downsampled_curve_keeps_the_gini_of_a_long_tailed_catalog(seed):
    rng = np.random.default_rng(seed)
    exposure = rng.pareto(1.2, 5000) * (rng.random(5000) < 0.5)  # half the catalog never shown

    x, y = lorenz_curve(exposure)

    assert len(x) <= 121 and x[0] == y[0] == 0.0 and x[-1] == y[-1] == 1.0
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0)
    area_gini = 1 - np.sum(np.diff(x) * (y[1:] + y[:-1]))
    assert 0 <= gini(exposure) - area_gini < 1e-3  # the kept chords lie above the full curve


def test_no_exposure_has_no_curve():
    assert lorenz_curve(np.zeros(4)) is None
    report = finish_popularity(exposure_sums(np.zeros((1, 2), np.int64), [np.array([1])], n_items=5),
                               popularity=POPULARITY)
    assert report["exposure_curve@2"] is None and report["popularity_deciles@2"]["recommended_share"] is None


def test_popularity_deciles_compare_recommended_and_consumed_shares():
    # Twenty items, popularity = id: decile d holds items 2d + 1 and 2d + 2, least popular first.
    popularity = np.arange(21)
    top = np.array([[20, 19], [20, 1]])  # three slots in the top decile, one in the bottom
    histories = [np.array([1, 2, 3, 20]), np.array([5])]

    deciles = finish_popularity(exposure_sums(top, histories, n_items=20), popularity=popularity)["popularity_deciles@2"]

    assert deciles["items"] == [2] * 10
    assert deciles["popularity_min"] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    assert deciles["popularity_max"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert deciles["recommended_share"] == pytest.approx([1 / 4] + [0] * 8 + [3 / 4])
    # User 1: half their history in decile 0, a quarter in 1 and 9; user 2: all in decile 2.
    assert deciles["consumed_share"] == pytest.approx([1 / 4, 1 / 8, 1 / 2] + [0] * 6 + [1 / 8])


def test_popularity_deciles_break_ties_as_the_short_head_and_leave_small_catalogs_partly_empty(report):
    deciles = report["popularity_deciles@2"]  # five items, ten deciles: deciles 1, 3, .. 9 empty

    assert deciles["items"] == [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    # Ascending popularity 1, 1, 2, 6, 10; of the tied items 4 and 5, item 4 counts as more popular.
    assert [v for v in deciles["popularity_min"] if v is not None] == [1, 1, 2, 6, 10]
    assert deciles["recommended_share"][0::2] == pytest.approx([0, 1 / 6, 1 / 6, 1 / 6, 3 / 6])  # items 5, 4, 3, 2, 1
    assert sum(deciles["consumed_share"]) == pytest.approx(1.0)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
