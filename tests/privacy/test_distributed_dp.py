"""--dp distributed, its parts: a store's noisy clipped gradient sum, the plan's noise shares,
the lifetime ledger and its cap. The federation end to end is in
tests/federation/test_distributed_dp.py."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from opacus.accountants import RDPAccountant

from conftest import resolved
from fedrec.cli import build_parser, given_options
from fedrec.config import FederationConfig, TrainConfig, split_mapping
from fedrec.federation.checks import check_options
from fedrec.errors import ConfigError
from fedrec.privacy.budget import BudgetExhausted, refuse_past_lifetime
from fedrec.privacy.distributed_dp import DistributedPlan, plan_distributed, survivors_needed
from fedrec.privacy.dp_sgd import noisy_gradient_sum
from fedrec.privacy.ledger import ClientLedger, load_ledger, save_ledger
from fedrec.privacy.secret_noise import SecretNoise
from privacy.test_bookkeeping import MAX_GRAD_NORM, clipped_sum_one_user_at_a_time, private_model


def test_a_store_sends_exactly_the_clipped_sum_of_its_sampled_users_gradients(chain_split, fast_config):
    """Sample rate 1 and no noise: the share is the definition, user by user."""
    model, samples = private_model("lstm", chain_split, fast_config)
    _, split = chain_split
    expected, coefficients = clipped_sum_one_user_at_a_time(copy.deepcopy(model), model.private_batch(samples, list(range(len(samples)))))
    assert (coefficients < 0.99).any()
    sampled, _, _ = noisy_gradient_sum(model, split, sample_rate=1.0, max_grad_norm=MAX_GRAD_NORM, noise_std=0.0,
                                    noise=SecretNoise.fresh(), round_number=1)
    assert sampled == len(samples)
    got = {name: p.grad for name, p in model.private_module().named_parameters() if p.requires_grad}
    for key in expected:
        assert torch.allclose(got[key], expected[key], atol=1e-6, rtol=1e-4), key


def test_the_noise_share_has_the_planned_std_and_two_releases_never_share_it(chain_split, fast_config):
    model, _ = private_model("lstm", chain_split, fast_config)
    _, split = chain_split
    draws = []
    for _ in range(2):  # the same model, data and round: only the secret key differs
        noisy_gradient_sum(model, split, sample_rate=1e-9, max_grad_norm=1.0, noise_std=0.3, noise=SecretNoise.fresh(),
                           round_number=1)  # nobody sampled: the share is the noise
        draws.append(torch.cat([p.grad.flatten() for p in model.private_module().parameters() if p.requires_grad]))
    assert float(draws[0].std()) == pytest.approx(0.3, rel=0.05)
    assert float((draws[0] - draws[1]).std()) == pytest.approx(0.3 * 2 ** 0.5, rel=0.05)  # independent draws


def test_any_survivors_shares_add_up_to_the_central_noise():
    plan = DistributedPlan(noise_multiplier=1.2, sample_rate=0.05, max_grad_norm=0.5, survivors=45, customers=22363,
                           rounds=220, delta=1e-5, accountant="rdp", prior_noise=5.0)
    assert plan.survivors * plan.noise_share_std ** 2 == pytest.approx((1.2 * 0.5) ** 2)
    assert plan.survivors * plan.prior_share ** 2 == pytest.approx(25.0)
    assert DistributedPlan.from_wire(plan.to_wire()) == plan
    fresh = RDPAccountant()
    fresh.history = [(5.0, 1.0, 1), (1.2, 0.05, 220)]
    assert plan.epsilon == pytest.approx(fresh.get_epsilon(delta=1e-5), rel=1e-9)


@pytest.mark.parametrize("stores, dropout, survivors", [(50, 0.1, 45), (5, 0.1, 5), (5, 0.2, 4), (3, 0.5, 2), (1, 0.0, 1)])
def test_survivors_are_the_fewest_stores_a_round_completes_with(stores, dropout, survivors):
    assert survivors_needed(stores, dropout) == survivors


def test_the_plan_is_the_centralised_dp_sgd_run(chain_file):
    train, federation = resolved(TrainConfig(model="lstm", data=str(chain_file), dp="distributed", target_epsilon=8.0),
                                 FederationConfig(num_clients=5))
    assert (train.batch_size, train.vocab_size, train.prior_noise) == (1024, 3000, 5.0)  # the centralised DP recipe
    assert federation.secagg is True and federation.rounds is None  # rounds: the plan's
    plan = plan_distributed(dataclasses.replace(train, batch_size=16), federation, customers=120, stores=5, uses_prior=True)
    assert (plan.sample_rate, plan.rounds) == (1 / 8, 10 * 8)  # 10 epochs of ceil(120 / 16) steps
    assert plan.epsilon == pytest.approx(8.0, rel=0.01) and plan.epsilon <= 8.0


@pytest.mark.parametrize("settings, named", [
    ({"model": "mf"}, "user vectors"), ({"partition": "user"}, "--partition store"), ({"fraction": 0.5}, "--fraction 1"),
])
def test_what_distributed_dp_cannot_do_is_refused_before_the_run(chain_file, settings, named):
    federation = {key: value for key, value in settings.items() if key != "model"}
    with pytest.raises(ConfigError, match=named):
        check_options(*resolved(TrainConfig(model=settings.get("model", "lstm"), data=str(chain_file), dp="distributed",
                                            noise_multiplier=1.0), FederationConfig(**federation)))


@pytest.mark.parametrize("flags, mode", [
    ([], "off"), (["--dp"], "local"), (["--dp", "local"], "local"), (["--dp", "distributed"], "distributed"),
    (["--dp", "central"], "central"), (["--central-dp"], "central"), (["--no-dp"], "off"),
])
def test_one_dp_flag_names_the_mode_and_the_old_flags_still_work(flags, mode):
    args = build_parser().parse_args(["simulate", *flags, "--noise-multiplier", "1", "--out", "x"])
    train, federation = split_mapping(given_options(args, TrainConfig, FederationConfig))
    assert train.dp == mode
    assert split_mapping({"dp": mode, "noise-multiplier": 1.0})[0].dp == mode  # flwr run's config: dp = "MODE"
    legacy = {"central": {"central-dp": True}, "distributed": {"distributed-dp": True, "dp": True}}.get(mode, {"dp": mode != "off"})
    assert split_mapping(legacy)[0].dp == mode  # a config written when the modes were booleans


def test_a_ledger_keeps_each_run_apart_and_composes_them_for_the_lifetime(tmp_path):
    ledger = ClientLedger("store-0", "rdp", 1e-5, 1.0, run="first")
    ledger.record_round(1, [(1.0, 0.05, 100)])
    ledger.begin_run("first")  # a resumed run continues
    assert ledger.history == [(1.0, 0.05, 100)]
    ledger.begin_run("second")
    ledger.record_round(1, [(1.0, 0.05, 100)])  # the same mechanism again: never merged across runs
    fresh = RDPAccountant()
    fresh.history = [(1.0, 0.05, 100), (1.0, 0.05, 100)]
    assert ledger.lifetime_epsilon == pytest.approx(fresh.get_epsilon(delta=1e-5), rel=1e-9)
    assert ledger.epsilon < ledger.lifetime_epsilon
    path = tmp_path / "store-0.privacy.json"
    save_ledger(path, ledger)
    assert load_ledger(path).lifetime_epsilon == pytest.approx(ledger.lifetime_epsilon)
    reloaded = load_ledger(path)
    reloaded.begin_run("third")
    planned = [(1.0, 0.05, 100)]
    cap = 0.99 * reloaded.lifetime_epsilon + 0.01 * ledger.epsilon  # below what a third run would reach
    with pytest.raises(BudgetExhausted, match="lifetime"):
        refuse_past_lifetime(reloaded, path, planned, cap, round_number=1)
    assert "lifetime" in load_ledger(path).refused[0]["reason"]  # the refusal is on the store's record
    refuse_past_lifetime(reloaded, path, planned, 2 * reloaded.lifetime_epsilon, round_number=1)  # room left: no refusal
    assert math.isfinite(reloaded.lifetime_epsilon)


def test_a_lifetime_cap_on_centralised_training_is_refused_with_the_reason(tmp_path):
    import fedrec

    with pytest.raises(ConfigError, match="keeps no ledger between runs"):
        fedrec.train(tmp_path / "run", model="lstm", dp="local", target_epsilon=8.0, lifetime_epsilon=20.0)
    assert not (tmp_path / "run").exists()
