"""A DP client's ledger: epsilon accumulates across rounds and restarts, and a client
whose next round would pass max-epsilon refuses to train (real Opacus, small data)."""

from __future__ import annotations

import json

import pytest
import torch
from opacus.accountants import RDPAccountant

from conftest import resolved
from fedrec.config import FederationConfig, TrainConfig
from fedrec.federation import wire
from fedrec.federation.client import locate_site, partitioned, train_client
from fedrec.models import create_model
from fedrec.privacy.budget import BudgetExhausted, ledger_file
from fedrec.privacy.ledger import load_ledger


def dp_configs(chain_file, model: str = "lstm", **privacy) -> tuple[TrainConfig, FederationConfig]:
    settings = {"noise_multiplier": 1.0, **privacy}
    train = TrainConfig(model=model, data=str(chain_file), dim=8, batch_size=8, lr=1e-2, threads=1, dp="local", **settings)
    return resolved(train, FederationConfig(partition="store", num_clients=3, rounds=3, local_epochs=1))


def start_state(train: TrainConfig, federation: FederationConfig) -> dict[str, torch.Tensor]:
    data, _ = partitioned(train, federation)
    return create_model(train.model, train, n_users=0, n_items=data.n_items).shareable_state()


def run_round(chain_file, tmp_path, train, federation, round_number, *, partition_id=0):
    # A fresh site per call: nothing carries over in memory, as after a process restart.
    site = locate_site({wire.NODE_PARTITION_ID: partition_id, wire.NODE_NUM_PARTITIONS: 3}, train, federation, str(tmp_path))
    return site, train_client(site, train, federation, start_state(train, federation), round_number)


@pytest.mark.parametrize("model", ["lstm", "mf"])
def test_epsilon_accumulates_across_rounds_and_restarts(chain_file, tmp_path, model):
    train, federation = dp_configs(chain_file, model)
    site, first = run_round(chain_file, tmp_path, train, federation, 1)
    _, second = run_round(chain_file, tmp_path, train, federation, 2)
    assert first.ledger is not None and second.ledger is not None
    assert 0 < first.ledger.epsilon < second.ledger.epsilon
    assert second.metrics[wire.EPSILON] == pytest.approx(second.ledger.epsilon)
    # The ledger on disk holds both rounds' steps, and a fresh Opacus accountant agrees.
    saved = load_ledger(ledger_file(tmp_path, site.name))
    assert saved.steps == first.ledger.steps * 2
    assert [r["round"] for r in saved.rounds] == [1, 2]
    fresh = RDPAccountant()
    fresh.history = saved.history
    assert fresh.get_epsilon(delta=saved.delta) == pytest.approx(second.ledger.epsilon, rel=1e-9)


def test_client_refuses_a_round_past_max_epsilon(chain_file, tmp_path):
    train, federation = dp_configs(chain_file)
    _, first = run_round(chain_file, tmp_path, train, federation, 1)
    cap = first.ledger.epsilon * 1.5  # room for one round, not two
    capped = TrainConfig(**{**train.to_dict(), "max_epsilon": cap})
    _, second = run_round(chain_file, tmp_path, capped, federation, 2)
    assert second.ledger.epsilon <= cap or second.ledger.epsilon > first.ledger.epsilon
    ledger_before = load_ledger(ledger_file(tmp_path, "store-0"))
    with pytest.raises(BudgetExhausted, match=r"refuses round 3.*past max-epsilon") as refusal:
        run_round(chain_file, tmp_path, capped, federation, 3)
    after = load_ledger(ledger_file(tmp_path, "store-0"))
    assert after.history == ledger_before.history  # nothing was spent
    assert after.refused[-1]["round"] == 3
    assert "max-epsilon" in str(refusal.value)


def test_target_epsilon_spreads_the_budget_over_the_planned_rounds(chain_file, tmp_path):
    train, federation = dp_configs(chain_file, noise_multiplier=None, target_epsilon=4.0)
    for round_number in range(1, federation.rounds + 1):
        _, update = run_round(chain_file, tmp_path, train, federation, round_number)
    final = update.ledger.epsilon
    assert 3.6 < final <= 4.0  # the planned rounds end at (just under) the target
    with pytest.raises(BudgetExhausted):  # one more round would pass it
        run_round(chain_file, tmp_path, train, federation, federation.rounds + 1)


def test_ledger_is_sent_to_the_server_as_json(chain_file, tmp_path):
    train, federation = dp_configs(chain_file)
    _, update = run_round(chain_file, tmp_path, train, federation, 1)
    document = json.loads(json.dumps(update.ledger.to_dict()))
    assert document["client"] == "store-0" and document["history"][0][2] >= 1
    assert set(update.shared) == set(start_state(train, federation))


def test_the_ledgers_epsilon_is_a_fresh_opacus_accountants_to_the_bit():
    """epsilon_of caches one step's RDP per (noise, rate) instead of asking a fresh
    RDPAccountant; the arithmetic is Opacus' own, so the numbers are identical."""
    import random
    import warnings

    from opacus.accountants import RDPAccountant

    from fedrec.privacy.ledger import epsilon_of

    rng = random.Random(0)
    for _ in range(20):
        history = [(rng.uniform(0.3, 5.0), rng.choice([1.0, rng.uniform(0.001, 0.5)]), rng.randint(1, 500))
                   for _ in range(rng.randint(1, 4))]
        delta = rng.choice([1e-5, 4.47e-6, 1e-3])
        fresh = RDPAccountant()
        fresh.history = history
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert epsilon_of(history, delta) == fresh.get_epsilon(delta=delta), history
