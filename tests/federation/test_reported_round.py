"""Which round a federated run reports (metrics.json headline, CLI summary, model.pt)."""

from fedrec.config import FederationConfig, TrainConfig
from fedrec.federation.run_record import reported_round

# Validation peaks at round 2 of 3.
HISTORY = [{"round": 1, "valid_hr@10": 0.1}, {"round": 2, "valid_hr@10": 0.5}, {"round": 3, "valid_hr@10": 0.3}]


def test_without_dp_the_round_with_the_best_validation_is_reported():
    chosen, selection = reported_round(TrainConfig(), FederationConfig(), HISTORY)

    assert chosen["round"] == 2 and selection == "best validation HR@10"


def test_under_client_dp_the_last_round_is_reported_whatever_validation_says():
    chosen, selection = reported_round(TrainConfig(dp="local", noise_multiplier=1.0), FederationConfig(), HISTORY)

    assert chosen["round"] == 3 and "DP" in selection


def test_under_server_side_dp_the_last_round_is_reported_too():
    chosen, _ = reported_round(TrainConfig(dp="central", noise_multiplier=1.0), FederationConfig(), HISTORY)

    assert chosen["round"] == 3


def test_without_server_validation_the_last_round_is_reported():
    chosen, selection = reported_round(TrainConfig(), FederationConfig(), [{"round": 1}, {"round": 2}])

    assert chosen["round"] == 2 and "no server-side validation" in selection
