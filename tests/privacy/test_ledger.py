"""The run's delta: a user's --delta is checked against 1/N, N the customers it protects."""

from __future__ import annotations

import pytest

from fedrec.errors import ConfigError
from fedrec.privacy.ledger import default_delta, delta_for


def test_a_users_delta_must_be_below_one_over_the_customers():
    assert delta_for(None, 1000) == default_delta(1000) == 1e-5
    assert delta_for(1e-4, 1000) == 1e-4
    with pytest.raises(ConfigError, match=r"--delta 0.001 is not below 1/N = 1/1000.*at most 1.0e-05"):
        delta_for(1e-3, 1000)
    with pytest.raises(ConfigError, match="not below 1/N"):
        delta_for(0.0, 1000)
