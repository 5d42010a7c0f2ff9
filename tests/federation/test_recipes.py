"""The defaults a user gets are the best measured recipe for the model and mode."""

import pytest

from fedrec.training.private import prior_release
from fedrec.cli_options import help_all
from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation.recipes import resolve_run
from fedrec.models.registry import model_class


def resolved(item_attributes: bool = True, **fields):
    train_fields = {k: v for k, v in fields.items() if k in TrainConfig.__dataclass_fields__}
    federation_fields = {k: v for k, v in fields.items() if k in FederationConfig.__dataclass_fields__}
    return resolve_run(TrainConfig(**train_fields), FederationConfig(**federation_fields), item_attributes=item_attributes)


def test_federated_lstm_defaults_to_the_mime_recipe():
    train, federation = resolved(model="lstm")

    assert (train.optimizer, train.lr, train.batch_size, train.attribute_buckets) == ("adam", 5e-3, 64, 1024)
    assert (federation.drift_correction, federation.mime_momentum, federation.strategy, federation.server_momentum) == ("mime", 0.0, "fedavgm", 0.9)
    assert (federation.rounds, federation.local_epochs, federation.client_lr_decay) == (100, 2, 1.0)
    assert (federation.server_eval, federation.fraction, federation.eval_users) == (True, 1.0, 0)


def test_devices_without_dp_default_to_fedsgd_with_the_servers_adam():
    """One local SGD step a device, FedAdam at the centralised Adam rate (docs/results.md)."""
    train, federation = resolved(model="lstm", partition="user")
    assert (train.optimizer, train.lr) == ("sgd", 10.0)
    assert (federation.strategy, federation.server_lr, federation.server_momentum, federation.local_epochs,
            federation.rounds, federation.fraction) == ("fedadam", 0.003, 0.9, 1, 1200, 0.01)
    # A server optimizer of the user's own keeps the model's client recipe; so do DP and the unmeasured MLP.
    chosen, federation = resolved(model="lstm", partition="user", strategy="fedavgm")
    assert (chosen.optimizer, federation.strategy, federation.server_lr, federation.local_epochs) == ("adam", "fedavgm", 1.0, 2)
    central, federation = resolved(model="lstm", partition="user", dp="central", noise_multiplier=1.0)
    assert (central.optimizer, federation.strategy) == ("adam", "fedavgm")
    mlp, federation = resolved(model="mlp", partition="user")
    assert (mlp.optimizer, federation.strategy, federation.local_epochs) == ("adam", "fedavgm", 2)


def test_an_optimizer_alone_brings_its_own_learning_rate():
    sgd, federation = resolved(model="lstm", optimizer="sgd")
    central = model_class("lstm").resolve_config(TrainConfig(model="lstm", optimizer="sgd"))
    mf = model_class("mf").resolve_config(TrainConfig(model="mf", optimizer="adam"), federated=True)

    assert sgd.lr == 20.0 and federation.drift_correction == "none"  # Mime needs Adam
    assert central.lr == 20.0
    assert (mf.optimizer, mf.lr) == ("adam", 3e-3)


def test_explicit_values_win_and_resolving_twice_changes_nothing():
    train, federation = resolved(model="lstm", lr=1e-2, rounds=3, drift_correction="none", server_momentum=0.5)

    assert (train.lr, federation.rounds, federation.drift_correction, federation.server_momentum) == (1e-2, 3, "none", 0.5)
    assert resolve_run(train, federation, item_attributes=True) == (train, federation)


def test_keeping_the_optimizer_state_turns_the_default_mime_off():
    _, federation = resolved(model="lstm", keep_optimizer_state=True)

    assert federation.drift_correction == "none"


def test_every_mode_reads_the_catalogs_attributes_when_the_data_has_them():
    for privacy in ({}, dict(dp="local", target_epsilon=8.0)):
        with_attributes, _ = resolved(model="lstm", **privacy)
        without, _ = resolved(model="lstm", item_attributes=False, **privacy)
        assert (with_attributes.attribute_buckets, without.attribute_buckets) == (1024, 0)
    assert model_class("lstm").resolve_config(TrainConfig(model="lstm"), item_attributes=True).attribute_buckets == 1024


def test_federated_dp_lstm_reads_attributes_only_when_the_data_has_them():
    private = dict(model="lstm", dp="local", target_epsilon=8.0)
    with_attributes, federation = resolved(**private)
    without, _ = resolved(item_attributes=False, **private)

    assert (with_attributes.attribute_buckets, without.attribute_buckets) == (1024, 0)
    assert (with_attributes.optimizer, with_attributes.lr, with_attributes.batch_size) == ("adam", 2e-2, 128)
    assert (with_attributes.vocab_size, with_attributes.prior_noise) == (500, 3.0)
    assert (federation.rounds, federation.local_epochs, federation.drift_correction) == (10, 1, "none")


def test_centralised_dp_lstm_takes_the_large_batch_recipe():
    config = model_class("lstm").resolve_config(TrainConfig(model="lstm", dp="local", target_epsilon=8.0), private=True,
                                                item_attributes=True)

    assert (config.epochs, config.batch_size, config.lr, config.vocab_size, config.prior_noise, config.attribute_buckets) == (
        10, 1024, 2e-2, 3000, 5.0, 1024)


def test_federated_mf_is_evaluated_by_its_stores_not_by_server_fold_in():
    train, federation = resolved(model="mf")
    _, cross_device = resolved(model="mf", partition="user")

    assert (train.optimizer, train.lr, federation.client_lr_decay, federation.rounds) == ("sgd", 10.0, 0.95, 40)
    assert (federation.server_eval, federation.fraction_evaluate) == (False, 1.0)
    assert (cross_device.fraction, cross_device.server_eval, cross_device.eval_users) == (0.01, True, 2000)


def test_a_model_that_is_not_federated_is_refused_by_name():
    with pytest.raises(ConfigError, match="itemknn is not federated"):
        resolved(model="itemknn")


def test_help_shows_the_resolved_defaults_not_none():
    help_text = " ".join(help_all("simulate").split())

    assert "(default: None)" not in help_text
    assert "federated 100" in help_text and "federated mime" in help_text
    assert "adam 0.005/sgd 20" in help_text


def test_prior_noise_zero_means_no_prior():
    train, _ = resolved(model="lstm", dp="local", target_epsilon=8.0, prior_noise=0.0, vocab_size=0)
    model = model_class("lstm")(train, n_users=0, n_items=5)

    assert prior_release(model) == []
