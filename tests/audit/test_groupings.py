"""Activity level, store and attribute groupings, and their shared vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

from fedrec.audit.groupings import (
    ACTIVE, OTHER, REST, activity_groups, activity_threshold, attribute_groups, encode, relabel, vocabulary,
)
from fedrec.errors import ConfigError, DataError


def test_the_top_fifth_by_history_length_is_active():
    lengths = np.arange(1, 11)  # ten users, 1..10 items: the top 20% are the two longest

    threshold = activity_threshold(lengths)

    assert threshold == 9
    assert activity_groups(lengths, threshold=threshold).tolist() == [REST] * 8 + [ACTIVE] * 2


def test_ties_at_the_threshold_join_the_active_group():
    lengths = np.array([5, 5, 5, 1, 1])  # top 20% is one user, but three share the length 5

    threshold = activity_threshold(lengths)

    assert threshold == 5
    assert activity_groups(lengths, threshold=threshold).tolist() == [ACTIVE] * 3 + [REST] * 2


def test_a_share_outside_zero_one_is_refused():
    with pytest.raises(ConfigError, match="top_share"):
        activity_threshold([1, 2, 3], top_share=1.5)


def test_missing_attribute_values_get_their_own_label():
    labels = attribute_groups(["18-24", None, float("nan"), "", 3])

    assert labels.tolist() == ["18-24", "unknown", "unknown", "unknown", "3"]
    assert vocabulary(labels) == ("18-24", "3", "unknown")


def test_codes_follow_the_shared_vocabulary_order():
    assert encode(np.array(["b", "a", "b"]), ("b", "a")).tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="'c'"):
        encode(np.array(["a", "c"]), ("a", "b"))


def test_a_fixed_vocabulary_counts_every_value_it_does_not_list_as_other():
    assert relabel(np.array(["female", "male", "agender"]), ("female", "male", OTHER)).tolist() == ["female", "male", OTHER]
    with pytest.raises(ConfigError, match="must list 'other'"):
        relabel(np.array(["female"]), ("female", "male"))
