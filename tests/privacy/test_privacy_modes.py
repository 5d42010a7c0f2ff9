"""Which privacy settings go together, checked before any process starts."""

from __future__ import annotations

import pytest

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.central_dp import check_privacy_modes, record_central_round, central_ledger
from fedrec.privacy.dp_sgd import plan_dp
from fedrec.privacy.ledger import default_delta, epsilon_of


@pytest.mark.parametrize(
    ("train", "federation", "message"),
    [
        (TrainConfig(dp=True, noise_multiplier=1.0), FederationConfig(central_dp=True), "choose one"),
        (TrainConfig(), FederationConfig(central_dp=True), "--noise-multiplier"),
        (TrainConfig(noise_multiplier=1.0), FederationConfig(central_dp=True, strategy="fedadam"), "fedavg"),
        (TrainConfig(dp=True, noise_multiplier=1.0), FederationConfig(keep_optimizer_state=True), "non-private"),
    ],
)
def test_incompatible_privacy_modes_are_refused(train, federation, message):
    with pytest.raises(ConfigError, match=message):
        check_privacy_modes(train, federation, uses_popularity_prior=False)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dp": True}, "neither was given"),
        ({"dp": True, "noise_multiplier": 1.0, "target_epsilon": 8.0}, "both were given"),
        ({"target_epsilon": 8.0}, "add --dp"),
        ({"dp": True, "noise_multiplier": 1.0, "delta": 1.5}, "delta"),
        ({"dp": True, "noise_multiplier": -1.0}, "noise_multiplier"),
    ],
)
def test_bad_dp_settings_name_the_fix(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_default_delta_is_below_one_over_records():
    assert default_delta(1000) == 1e-5
    assert default_delta(1_000_000) == pytest.approx(1e-7)


def test_target_epsilon_plan_ends_at_the_target():
    config = TrainConfig(model="lstm", dp=True, target_epsilon=8.0, batch_size=64)
    plan = plan_dp(config, records=450, planned_epochs=20)
    assert plan.sample_rate == pytest.approx(1 / 8)
    assert 7.8 < plan.epsilon_after([], 20) <= 8.0
    assert plan.epsilon_after([], 21) > 8.0


def test_central_dp_ledger_counts_one_release_per_round():
    ledger = central_ledger(TrainConfig(noise_multiplier=1.2), population=5000)
    for round_number in (1, 2, 3):
        record_central_round(ledger, round_number, 1.2)
    assert ledger.history == [(1.2, 1.0, 3)]
    assert ledger.delta == pytest.approx(min(1e-5, 1 / 50000))
    assert ledger.epsilon == epsilon_of([(1.2, 1.0, 3)], ledger.delta)
    assert [r["round"] for r in ledger.rounds] == [1, 2, 3]


def test_a_target_the_popularity_prior_alone_would_spend_is_refused_up_front():
    train = TrainConfig(model="lstm", dp=True, target_epsilon=1.0, prior_noise=3.0)
    with pytest.raises(ConfigError, match="--prior-noise"):
        check_privacy_modes(train, FederationConfig(), uses_popularity_prior=True)
    check_privacy_modes(TrainConfig(model="lstm", dp=True, target_epsilon=1.0, prior_noise=10.0), FederationConfig(),
                        uses_popularity_prior=True)
    check_privacy_modes(TrainConfig(model="mf", dp=True, target_epsilon=1.0, prior_noise=3.0), FederationConfig(),
                        uses_popularity_prior=False)
