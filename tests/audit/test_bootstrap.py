"""Poisson(1) weights seeded per customer: the same customer draws the same weights anywhere."""

from __future__ import annotations

import math

import numpy as np

from fedrec.audit.bootstrap import customer_hashes, poisson_weights, weighted_cell_sums


def test_a_customers_weights_do_not_depend_on_who_else_is_evaluated():
    alone = poisson_weights(customer_hashes(["jane"]), seed=3, n_boot=100)

    crowd = poisson_weights(customer_hashes(["bob", "ann", "jane", "eve"]), seed=3, n_boot=100)

    assert np.array_equal(crowd[2], alone[0])


def test_another_seed_or_customer_draws_other_weights():
    base = poisson_weights(customer_hashes(["jane"]), seed=3, n_boot=100)

    assert not np.array_equal(poisson_weights(customer_hashes(["jane"]), seed=4, n_boot=100), base)
    assert not np.array_equal(poisson_weights(customer_hashes(["jana"]), seed=3, n_boot=100), base)


def test_weights_follow_a_poisson_one_distribution():
    weights = poisson_weights(customer_hashes(range(2000)), seed=0, n_boot=200).ravel()  # 400k draws

    for n in range(5):  # P(N = n) = e^-1 / n!
        assert abs(np.mean(weights == n) - math.exp(-1) / math.factorial(n)) < 0.004
    assert abs(weights.mean() - 1.0) < 0.01 and abs(weights.var() - 1.0) < 0.02


def test_keys_hash_by_their_text():
    assert np.array_equal(customer_hashes([5, "x"]), customer_hashes(["5", "x"]))


def test_cell_sums_match_a_plain_loop_across_chunks():
    rng = np.random.default_rng(0)
    n_users, n_cells, n_boot = 5000, 7, 30  # more users than one chunk (2048)
    hashes = customer_hashes(range(n_users))
    cells = rng.integers(0, n_cells, n_users)

    sums = weighted_cell_sums(hashes, cells, n_cells=n_cells, seed=9, n_boot=n_boot)

    weights = poisson_weights(hashes, seed=9, n_boot=n_boot).astype(np.int64)
    expected = np.zeros((n_boot, n_cells), dtype=np.int64)
    for user in range(n_users):
        expected[:, cells[user]] += weights[user]
    assert np.array_equal(sums, expected)
