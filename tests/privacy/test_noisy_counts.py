"""The DP popularity floor: user-level counts, Gaussian noise on every item, one accounted release."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from fedrec.training import fit_model
from fedrec.cli import main
from fedrec.config import TrainConfig
from fedrec.errors import ConfigError
from fedrec.models import create_model
from fedrec.privacy.ledger import RUN_LEDGER, epsilon_of
from fedrec.privacy.noisy_counts import gaussian_noisy_counts, noise_for_epsilon, user_level_counts
from fedrec.privacy.secret_noise import SecretNoise

def test_adding_one_heavy_user_moves_the_counts_by_at_most_one_in_l2():
    rng = np.random.default_rng(0)
    crowd = [rng.integers(1, 50, size=int(rng.integers(1, 20))) for _ in range(30)]
    heavy = np.concatenate([np.arange(1, 51), np.arange(1, 51), [7] * 100])  # repeats count once
    for cap in (None, 5):
        without = user_level_counts(crowd, 50, max_items_per_user=cap)
        with_heavy = user_level_counts([*crowd, heavy], 50, max_items_per_user=cap)
        assert np.linalg.norm(with_heavy - without) <= 1.0 + 1e-9


def test_the_cap_keeps_a_users_most_recent_distinct_items():
    counts = user_level_counts([np.array([1, 2, 3, 2, 4])], 5, max_items_per_user=2)
    assert np.flatnonzero(counts).tolist() == [2, 4]
    np.testing.assert_allclose(counts[[2, 4]], 1 / np.sqrt(2))


def test_noise_reaches_every_item_with_the_requested_std():
    counts = np.zeros(12_001)
    counts[1:11] = 5.0  # almost every item has count zero: those must be noised too
    noisy = gaussian_noisy_counts(counts, 2.0, SecretNoise.fresh())
    noise = noisy[1:] - counts[1:]
    assert np.all(noise != 0.0)
    assert abs(noise.std() - 2.0) < 0.2
    assert noisy[0] == 0.0  # padding is not an item


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_noise_for_epsilon_spends_at_most_the_target_and_nearly_all_of_it(accountant):
    for target in (1.0, 8.0):
        sigma = noise_for_epsilon(target, 1e-5, accountant)
        spent = epsilon_of([(sigma, 1.0, 1)], 1e-5, accountant)
        assert target * 0.98 <= spent <= target


def test_an_unreachable_epsilon_is_a_config_error_naming_the_fix():
    with pytest.raises(ConfigError, match="--accountant prv"):
        noise_for_epsilon(0.01, 1e-5, "rdp")


def test_train_pop_with_dp_writes_the_ledger_and_a_privacy_block(chain_file, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--model", "pop", "--data", str(chain_file), "--dp", "--target-epsilon", "1", "--no-release-gate", "--out", str(out)])
    assert code == 0
    ledger = json.loads((out / RUN_LEDGER).read_text())
    (client,) = ledger["clients"]
    assert client["client"] == "central" and client["mechanism"] == "gaussian-counts"
    assert client["history"] == [[pytest.approx(client["history"][0][0]), 1.0, 1]]
    assert client["epsilon"] <= 1.0
    privacy = json.loads((out / "metrics.json").read_text())["privacy"]
    assert privacy["epsilon"] <= 1.0 and privacy["delta"] == client["delta"]
    assert privacy["noise_multiplier"] == pytest.approx(client["history"][0][0])


def test_train_pop_without_dp_keeps_raw_counts_and_no_privacy_block(chain_file, chain_split, tmp_path):
    data, split = chain_split
    out = tmp_path / "run"
    assert main(["train", "--model", "pop", "--data", str(chain_file), "--no-release-gate", "--out", str(out)]) == 0
    assert "privacy" not in json.loads((out / "metrics.json").read_text())
    assert not (out / RUN_LEDGER).exists()
    model = create_model("pop", TrainConfig(model="pop"), n_users=data.n_users, n_items=data.n_items)
    _, ledger = fit_model(model, split)
    expected = np.bincount(np.concatenate(split.train), minlength=data.n_items + 1)
    np.testing.assert_array_equal(model.counts.numpy(), expected)
    assert ledger is None


def test_dp_pop_with_a_huge_epsilon_ranks_the_same_top_items_as_plain_pop(chain_split, fast_config):
    data, split = chain_split
    private = create_model("pop", TrainConfig(model="pop", dp="local", target_epsilon=1e4), n_users=data.n_users, n_items=data.n_items)
    plain = create_model("pop", fast_config, n_users=data.n_users, n_items=data.n_items)
    _, ledger = fit_model(private, split)
    fit_model(plain, split)
    sigma = ledger.history[0][0]
    assert sigma < 0.01
    np.testing.assert_allclose(private.counts.numpy(), user_level_counts(split.train, data.n_items), atol=6 * sigma)
    nobody = [np.empty(0, dtype=np.int64)]
    top = private.recommend(np.array([0]), nobody, k=10)[0]
    raw = plain.counts.numpy()
    assert np.all(raw[top] >= np.sort(raw)[::-1][9])  # plain pop's top 10, up to its ties


def test_dp_pop_refuses_a_release_beyond_max_epsilon(chain_split):
    data, split = chain_split
    config = TrainConfig(model="pop", dp="local", noise_multiplier=0.5, max_epsilon=1.0)
    model = create_model("pop", config, n_users=data.n_users, n_items=data.n_items)
    with pytest.raises(ConfigError, match="max_epsilon"):
        fit_model(model, split)
    assert model.counts is None
