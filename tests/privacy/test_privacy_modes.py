"""Which privacy settings go together: each privacy mode's checks, run before any process starts."""

from __future__ import annotations

import pytest

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.central_dp import central_ledger, record_central_round
from fedrec.privacy.dp_sgd import plan_dp
from fedrec.privacy.ledger import default_delta, epsilon_of
from fedrec.privacy.modes import privacy_mode


def check(train: TrainConfig, federation: FederationConfig = FederationConfig(), *, prior: bool = False) -> None:
    privacy_mode(train.dp).check(train, federation, every_parameter_shared=True, uses_popularity_prior=prior)


@pytest.mark.parametrize(
    ("train", "federation", "message"),
    [
        (TrainConfig(dp="central"), FederationConfig(), "--noise-multiplier"),
        (TrainConfig(dp="central", noise_multiplier=1.0), FederationConfig(strategy="fedadam"), "fedavg"),
        (TrainConfig(dp="central", noise_multiplier=1.0), FederationConfig(secagg=True), "--secagg"),
        (TrainConfig(dp="local", noise_multiplier=1.0), FederationConfig(keep_optimizer_state=True), "non-private"),
        (TrainConfig(dp="local"), FederationConfig(), "neither was given"),
        (TrainConfig(dp="distributed", noise_multiplier=1.0, target_epsilon=8.0), FederationConfig(), "both were given"),
        (TrainConfig(target_epsilon=8.0), FederationConfig(), "--dp local or --dp distributed"),
        (TrainConfig(dp="central", noise_multiplier=1.0, lifetime_epsilon=8.0), FederationConfig(), "not under --dp central"),
        (TrainConfig(vocab_size=100, prior_noise=5.0), FederationConfig(), "--prior-noise"),
    ],
)
def test_what_a_mode_cannot_do_is_refused_naming_the_fix(train, federation, message):
    with pytest.raises(ConfigError, match=message):
        check(train, federation)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dp": "local", "noise_multiplier": 1.0, "delta": 1.5}, "delta"),
        ({"dp": "local", "noise_multiplier": -1.0}, "noise_multiplier"),
    ],
)
def test_bad_dp_settings_name_the_fix(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_an_unknown_mode_names_the_known_ones_and_old_booleans_still_read():
    with pytest.raises(ConfigError, match="off, local, central, distributed"):
        privacy_mode("seeded")
    assert TrainConfig(dp=True).dp == "local" and TrainConfig(dp=False).dp == "off"
    assert privacy_mode(True) is privacy_mode("local")


def test_fedrec_train_takes_only_the_modes_of_one_data_holder():
    check_centralised = lambda train: privacy_mode(train.dp).check_centralised(train)  # noqa: E731
    check_centralised(TrainConfig())
    check_centralised(TrainConfig(dp="local", noise_multiplier=1.0))
    for mode in ("central", "distributed"):
        with pytest.raises(ConfigError, match="federated privacy mode"):
            check_centralised(TrainConfig(dp=mode, noise_multiplier=1.0))


def test_default_delta_is_below_one_over_records():
    assert default_delta(1000) == 1e-5
    assert default_delta(1_000_000) == pytest.approx(1e-7)


def test_target_epsilon_plan_ends_at_the_target():
    config = TrainConfig(model="lstm", dp="local", target_epsilon=8.0, batch_size=64)
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
    train = TrainConfig(model="lstm", dp="local", target_epsilon=1.0, prior_noise=3.0)
    with pytest.raises(ConfigError, match="--prior-noise"):
        check(train, prior=True)
    check(TrainConfig(model="lstm", dp="local", target_epsilon=1.0, prior_noise=10.0), prior=True)
    check(TrainConfig(model="mf", dp="local", target_epsilon=1.0, prior_noise=3.0), prior=False)
