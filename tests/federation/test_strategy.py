"""Aggregation rules, on arrays small enough to check by hand."""

import numpy as np

from fedrec.federation.strategy import fill_untouched_rows


def weighted_mean(arrays, weights):
    return sum(w * a for w, a in zip(weights, arrays)) / sum(weights)


def test_each_item_row_is_averaged_over_the_clients_that_changed_it():
    global_rows = np.zeros((4, 2), dtype=np.float32)
    a = global_rows.copy()
    a[1] = [1.0, 1.0]  # only store A saw item 1
    a[3] = [2.0, 2.0]
    b = global_rows.copy()
    b[2] = [5.0, 5.0]  # only store B saw item 2
    b[3] = [6.0, 6.0]
    weights = [1.0, 3.0]

    filled = fill_untouched_rows(global_rows, [a, b], weights)
    result = weighted_mean(filled, weights)

    np.testing.assert_allclose(result[0], [0.0, 0.0])  # nobody: stays global
    np.testing.assert_allclose(result[1], [1.0, 1.0])  # A alone: not diluted by B's weight
    np.testing.assert_allclose(result[2], [5.0, 5.0])
    np.testing.assert_allclose(result[3], [(2 + 18) / 4] * 2)  # both: the usual weighted mean


def test_plain_weighted_mean_would_dilute_a_row_one_client_trained():
    global_rows = np.zeros((2, 1))
    a = np.array([[4.0], [0.0]])
    b = np.zeros((2, 1))
    assert weighted_mean([a, b], [1.0, 3.0])[0, 0] == 1.0  # FedAvg: a quarter of A's update
    assert weighted_mean(fill_untouched_rows(global_rows, [a, b], [1.0, 3.0]), [1.0, 3.0])[0, 0] == 4.0
