"""ARP against consumed items, long-tail share, coverage and exposure Gini on hand-made lists."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedrec.audit.exposure import exposure_sums, gini
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
