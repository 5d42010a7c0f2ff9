"""A customer of several stores (fedrec.privacy.several_stores): bounds from the accountant,
far below generic group privacy's delta."""

from __future__ import annotations

import pytest

from fedrec.privacy.central_dp import SERVER
from fedrec.privacy.distributed_dp import FEDERATION
from fedrec.privacy.ledger import ClientLedger, epsilon_of
from fedrec.privacy.several_stores import rdp_group_epsilon, several_stores

MAIN_JOB = [(5.0, 1.0, 1), (0.835, 1 / 22, 220)]  # the prior, then 220 steps


def test_per_store_dp_composes_the_stores_with_the_largest_epsilon():
    ledgers = {name: ClientLedger(name, "rdp", 1e-5, 1.0, history=[(noise, 0.05, 200)])
               for name, noise in (("a", 1.0), ("b", 1.2), ("c", 0.9))}
    two = several_stores(ledgers, 2)
    assert two["epsilon"] == pytest.approx(epsilon_of([(1.0, 0.05, 200), (0.9, 0.05, 200)], 1e-5, "rdp"))
    assert ledgers["c"].epsilon < two["epsilon"] < two["group_privacy_epsilon"]
    assert several_stores(ledgers, 4) is None  # three stores hold no customer four times


def test_distributed_dp_takes_the_smaller_of_two_valid_bounds_at_the_runs_delta():
    federation = ClientLedger(FEDERATION, "rdp", 1e-5, 1.0, history=MAIN_JOB)
    two = several_stores({FEDERATION: federation}, 2)
    assert two["delta"] == 1e-5 and two["group_privacy_delta"] > 1e-3  # the generic bound's delta is useless
    assert federation.epsilon < two["epsilon"] == pytest.approx(rdp_group_epsilon(MAIN_JOB, 1e-5, 2))
    assert 20 < two["epsilon"] < 30 and "RDP group privacy" in two["how"]


def test_central_dp_protects_clients_not_pseudonyms():
    assert several_stores({SERVER: ClientLedger(SERVER, "rdp", 1e-5, 1.0, history=[(1.0, 1.0, 10)])}, 2) is None
