"""TrainConfig: defaults, parsing run-config / CLI mappings, validation, model defaults."""

from __future__ import annotations

import dataclasses

import pytest

from fedrec.config import TrainConfig
from fedrec.errors import ConfigError


def test_default_config_is_valid_and_leaves_model_knobs_unset():
    config = TrainConfig()

    assert config.model == "lstm"
    assert config.data == "beauty"
    assert config.min_interactions == 3
    assert config.short_users == "drop"
    assert config.mask_history is True
    assert (config.epochs, config.batch_size, config.lr, config.dim, config.dropout) == (None,) * 5


def test_empty_mapping_gives_the_defaults():
    assert TrainConfig.from_mapping({}) == TrainConfig()


def test_from_mapping_accepts_kebab_case_keys():
    config = TrainConfig.from_mapping({"batch-size": 64, "max-len": 20, "short-users": "error"})

    assert config.batch_size == 64
    assert config.max_len == 20
    assert config.short_users == "error"


def test_from_mapping_accepts_snake_case_keys():
    config = TrainConfig.from_mapping({"batch_size": 64, "weight_decay": 0.01, "min_interactions": 4})

    assert config.batch_size == 64
    assert config.weight_decay == 0.01
    assert config.min_interactions == 4


def test_from_mapping_coerces_strings_to_field_types():
    config = TrainConfig.from_mapping(
        {"seed": "3", "epochs": "7", "lr": "1e-3", "dropout": "0.25", "max-minutes": "1.5"}
    )

    assert config.seed == 3 and isinstance(config.seed, int)
    assert config.epochs == 7 and isinstance(config.epochs, int)
    assert config.lr == 0.001
    assert config.dropout == 0.25
    assert config.max_minutes == 1.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("True", True), ("yes", True), ("1", True), ("on", True),
     ("false", False), ("FALSE", False), ("no", False), ("0", False), ("off", False)],
)
def test_from_mapping_reads_boolean_words(text, expected):
    config = TrainConfig.from_mapping({"mask-history": text})

    assert config.mask_history is expected


def test_from_mapping_keeps_real_booleans():
    assert TrainConfig.from_mapping({"mask_history": False}).mask_history is False


@pytest.mark.parametrize("text", ["none", "None", "NONE"])
def test_from_mapping_reads_none_for_optional_fields(text):
    config = TrainConfig.from_mapping({"epochs": text, "lr": text, "threads": text})

    assert config.epochs is None
    assert config.lr is None
    assert config.threads is None


def test_from_mapping_accepts_whole_floats_for_int_fields():
    config = TrainConfig.from_mapping({"epochs": 2.0})

    assert config.epochs == 2 and isinstance(config.epochs, int)


def test_from_mapping_with_explicit_values_overrides_none_default():
    config = TrainConfig.from_mapping({"dim": "32"})

    assert config.dim == 32


def test_unknown_key_raises_config_error_naming_the_key():
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_mapping({"batch-sizes": 8})

    message = str(raised.value)
    assert "unknown config key 'batch-sizes'" in message
    assert "batch-size" in message.split("known keys:")[1]


def test_unknown_model_raises_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match=r"model='xyz' is not one of pop, itemknn, userknn, mf, lstm, mlp"):
        TrainConfig.from_mapping({"model": "xyz"})


def test_unknown_choice_raises_config_error_when_built_directly():
    with pytest.raises(ConfigError, match=r"similarity='jaccard'"):
        TrainConfig(similarity="jaccard")


def test_short_users_policy_must_be_drop_or_error():
    with pytest.raises(ConfigError, match=r"short_users='skip'"):
        TrainConfig.from_mapping({"short-users": "skip"})


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("seed", "abc", r"seed='abc' is not a valid int; give e.g. seed=1"),
        ("epochs", "2.5", r"epochs='2.5' is not a valid int"),
        ("epochs", 2.5, r"epochs=2.5 is not a valid int"),
        ("lr", "fast", r"lr='fast' is not a valid float"),
        ("max-minutes", "ten", r"max_minutes='ten' is not a valid float; give e.g. max-minutes=1.0"),
        ("mask-history", "maybe", r"mask_history='maybe' is not a valid bool; give e.g. mask-history=true"),
        ("mask_history", 2, r"mask_history=2 is not a valid bool"),
    ],
)
def test_bad_type_raises_config_error_naming_the_field_and_value(key, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig.from_mapping({key: value})


def test_none_for_a_required_field_raises_config_error():
    with pytest.raises(ConfigError, match="seed needs a value of type int"):
        TrainConfig.from_mapping({"seed": None})


def test_none_word_is_not_special_for_a_required_int_field():
    with pytest.raises(ConfigError, match=r"seed='none' is not a valid int"):
        TrainConfig.from_mapping({"seed": "none"})


@pytest.mark.parametrize("value", [2, "2", 0, -1])
def test_min_interactions_below_three_raises_config_error(value):
    with pytest.raises(ConfigError, match="leave-one-out needs at least 3"):
        TrainConfig.from_mapping({"min-interactions": value})


def test_min_interactions_of_three_is_accepted():
    assert TrainConfig(min_interactions=3).min_interactions == 3


@pytest.mark.parametrize("name", ["epochs", "batch_size", "dim", "max_len", "neighbors", "threads"])
def test_non_positive_sizes_raise_config_error_naming_the_field(name):
    with pytest.raises(ConfigError, match=rf"{name}=0 must be a positive integer"):
        TrainConfig.from_mapping({name: "0"})


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"patience": -1}, r"patience=-1 must be >= 0"),
        ({"lr": 0.0}, r"lr=0.0 must be a finite number > 0"),
        ({"lr": -0.1}, r"lr=-0.1 must be a finite number > 0"),
        ({"dropout": 1.0}, r"dropout=1.0 must be in \[0, 1\)"),
        ({"dropout": -0.1}, r"dropout=-0.1 must be in \[0, 1\)"),
    ],
)
def test_out_of_range_values_raise_config_error(changes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig(**changes)


def test_zero_patience_and_zero_dropout_are_valid():
    config = TrainConfig(patience=0, dropout=0.0)

    assert (config.patience, config.dropout) == (0, 0.0)


def test_config_is_immutable():
    config = TrainConfig()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]


def test_with_model_defaults_fills_only_unset_fields():
    config = TrainConfig(epochs=7, dropout=0.0)
    defaults = {"epochs": 200, "batch_size": 128, "lr": 1e-3, "dim": 64, "dropout": 0.3}

    filled = config.with_model_defaults(defaults)

    assert filled.epochs == 7
    assert filled.dropout == 0.0  # an explicit zero is a value, not "unset"
    assert filled.batch_size == 128
    assert filled.lr == 1e-3
    assert filled.dim == 64


def test_with_model_defaults_leaves_the_original_untouched():
    config = TrainConfig()

    config.with_model_defaults({"epochs": 200})

    assert config.epochs is None


def test_with_model_defaults_validates_the_filled_values():
    with pytest.raises(ConfigError, match="lr=0 must be a finite number > 0"):
        TrainConfig().with_model_defaults({"lr": 0})


def test_to_dict_round_trips_through_from_mapping():
    config = TrainConfig(model="mf", epochs=3, lr=0.01, mask_history=False, similarity="adjusted-cosine")

    assert TrainConfig.from_mapping(config.to_dict()) == config


def test_to_dict_as_strings_round_trips_through_from_mapping():
    config = TrainConfig(model="itemknn", neighbors=20, max_minutes=2.5, threads=4)
    as_text = {key.replace("_", "-"): str(value) for key, value in config.to_dict().items()}

    assert TrainConfig.from_mapping(as_text) == config


def test_attribute_buckets_are_a_sequence_model_option_and_not_negative():
    assert TrainConfig(model="lstm", attribute_buckets=64).attribute_buckets == 64
    assert TrainConfig(model="mlp", attribute_buckets=64).attribute_buckets == 64
    with pytest.raises(ConfigError, match="option of lstm and mlp"):
        TrainConfig(model="mf", attribute_buckets=64)
    with pytest.raises(ConfigError, match=">= 0"):
        TrainConfig(model="lstm", attribute_buckets=-1)
