"""Federated evaluation under client DP as one secure sum (fedrec.federation.secure_evaluation):
what the server reads back is the user-weighted mean FedAvg reports in clear modes."""

from __future__ import annotations

import pytest

from fedrec.federation import wire
from fedrec.federation.secure_evaluation import evaluation_vector, weighted_means
from fedrec.federation.wire_contract import EVALUATION_METRICS


def test_the_sum_of_store_vectors_gives_the_user_weighted_means():
    stores = [{wire.NUM_EXAMPLES: 100, **{name: 0.1 for name in EVALUATION_METRICS}},
              {wire.NUM_EXAMPLES: 300, **{name: 0.3 for name in EVALUATION_METRICS}}]
    means = weighted_means(sum(evaluation_vector(store) for store in stores))
    assert means[wire.NUM_EXAMPLES] == 400
    assert all(means[name] == pytest.approx(0.25) for name in EVALUATION_METRICS)  # (100 x 0.1 + 300 x 0.3) / 400
    assert weighted_means(evaluation_vector({wire.NUM_EXAMPLES: 0, **{n: 0.0 for n in EVALUATION_METRICS}})) == {}
