"""--audit-holdout: who is held out depends on the customer alone, about the asked share."""

from __future__ import annotations

import numpy as np
import pytest

from fedrec.config import FederationConfig
from fedrec.data import load_dataset
from fedrec.data.holdout import held_out, split_holdout
from fedrec.errors import ConfigError


def test_each_customer_is_in_or_out_by_their_id_alone():
    ids = np.array([f"customer-{i}" for i in range(20_000)])
    mask = held_out(ids, 0.1, seed=0)
    assert abs(mask.mean() - 0.1) < 0.01
    order = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(held_out(ids[order], 0.1, seed=0), mask[order])  # not by position
    assert not np.array_equal(held_out(ids, 0.1, seed=1), mask)  # the seed draws anew
    assert not held_out(ids, 0.0, seed=0).any()


def test_split_keeps_every_customer_once_with_their_history(chain_file):
    data = load_dataset(str(chain_file), min_interactions=3)
    trained, out = split_holdout(data, 0.3, seed=0)
    assert trained.n_users + out.n_users == data.n_users and out.n_users > 0
    assert set(trained.users.raw) | set(out.users.raw) == set(data.users.raw)
    by_id = dict(zip(data.users.raw, data.sequences))
    assert all(np.array_equal(by_id[raw], seq) for raw, seq in zip(out.users.raw, out.sequences))


@pytest.mark.parametrize("share", [-0.1, 0.6])
def test_share_out_of_range_is_refused(share):
    with pytest.raises(ConfigError, match="audit_holdout"):
        FederationConfig(audit_holdout=share)


def test_holdout_needs_stores():
    with pytest.raises(ConfigError, match="--partition store"):
        FederationConfig(audit_holdout=0.1, partition="user")
