"""Central DP on devices in shards (fedrec.federation.device_central_dp): each device's update
clipped on the device, the server's secret noise on the sum over the expected cohort, secret
Poisson cohorts, and the two epsilons (against outsiders with the release, against the server)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAvg

from fedrec.config import TrainConfig
from fedrec.federation.device_central_dp import ClippedSum, DeviceCentralDP, noisy_mean, secret_poisson_cohort
from fedrec.privacy.central_dp import COHORT_KNOWN, OUTSIDERS, device_ledgers, epsilons_by_viewer, record_device_round
from fedrec.privacy.ledger import epsilon_of
from fedrec.privacy.secret_noise import SecretNoise

CLIP = 0.5


def _global_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"item_embedding.weight": torch.randn(6, 3, generator=generator), "output.bias": torch.zeros(4),
            "attribute_table": torch.arange(6)}  # an integer lookup: never an update


def _flat(arrays: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([arrays[key].reshape(-1).astype(np.float64) for key in sorted(arrays)])


def test_a_device_whose_update_exceeds_the_clip_contributes_exactly_the_clip():
    start = _global_state()
    long = {key: value + 3.0 if value.is_floating_point() else value for key, value in start.items()}
    short = {key: value + 0.01 if value.is_floating_point() else value for key, value in start.items()}
    total = ClippedSum(start, clipping_norm=CLIP)
    total.add(long, weight=5.0, loss=1.0)
    arrays, metrics = total.reply()
    assert set(arrays) == {"item_embedding.weight", "output.bias"} and metrics["num-users"] == 1
    assert np.linalg.norm(_flat(arrays)) == pytest.approx(CLIP, rel=1e-6)  # 3 x sqrt(22) = 14 before
    np.testing.assert_allclose(_flat(arrays) / CLIP, np.full(22, 1 / np.sqrt(22)), rtol=1e-6)  # the direction kept
    total.add(short, weight=100.0, loss=1.0)  # inside the clip: as it is, whatever its examples
    arrays, metrics = total.reply()
    assert metrics["num-users"] == 2
    np.testing.assert_allclose(_flat(arrays), np.full(22, CLIP / np.sqrt(22) + 0.01), rtol=1e-5)


def test_the_noise_on_the_mean_has_std_noise_times_clip_over_the_expected_cohort():
    noise_multiplier, expected_cohort = 1.3, 4.5  # q x N: 0.05 x 90 devices
    total = {"w": np.zeros(2000)}
    draws = np.concatenate([noisy_mean(total, noise_multiplier=noise_multiplier, clipping_norm=CLIP,
                                       expected_cohort=expected_cohort, noise=SecretNoise.fresh())["w"] for _ in range(50)])
    assert draws.std() == pytest.approx(noise_multiplier * CLIP / expected_cohort, rel=0.02)
    assert abs(draws.mean()) < 0.01 * noise_multiplier * CLIP / expected_cohort


def _server(noise_multiplier: float = 1.0, expected_cohort: float = 4.0) -> DeviceCentralDP:
    server = DeviceCentralDP(FedAvg(), noise_multiplier=noise_multiplier, clipping_norm=CLIP, expected_cohort=expected_cohort)
    server.global_arrays = ArrayRecord({key: Array(value.numpy()) for key, value in _global_state().items()})
    return server


def _sums(*values: float) -> list[ArrayRecord]:
    """One shard reply per value: every float array of the update equal to it."""
    return [ArrayRecord({"item_embedding.weight": Array(np.full((6, 3), v, dtype=np.float32)),
                         "output.bias": Array(np.full(4, v, dtype=np.float32))}) for v in values]


def test_the_server_releases_global_plus_the_noisy_sum_over_the_expected_cohort():
    start = {key: value.numpy() for key, value in _global_state().items()}
    quiet = _server(noise_multiplier=1e-9)  # noise this small leaves the arithmetic to check
    released = quiet.release(_sums(0.2, 0.6))
    np.testing.assert_allclose(released["output.bias"], start["output.bias"] + 0.8 / 4.0, atol=1e-6)
    np.testing.assert_array_equal(released["attribute_table"], start["attribute_table"])  # lookups as sent
    assert released["item_embedding.weight"].dtype == np.float32


@pytest.fixture
def seeded_server_noise(monkeypatch):
    """Planted weakness: the server's noise key derived from the run's seed."""
    monkeypatch.setattr(SecretNoise, "fresh", classmethod(lambda cls: cls(hashlib.sha256(b"seed=42").digest())))


def the_noise_repeats(server: DeviceCentralDP) -> bool:
    first, second = server.release(_sums(0.1, 0.1)), server.release(_sums(0.1, 0.1))
    return all(np.array_equal(first[key], second[key]) for key in first)


def test_the_servers_noise_is_never_drawn_twice():
    assert not the_noise_repeats(_server())


def test_seeded_server_noise_repeats(seeded_server_noise):
    assert the_noise_repeats(_server())


def test_cohorts_are_secret_poisson_draws_at_rate_q():
    sizes = [len(secret_poisson_cohort(1000, 0.05, round_number=3)) for _ in range(40)]
    assert np.mean(sizes) == pytest.approx(50, rel=0.1) and len(set(sizes)) > 1  # the size varies: Poisson, not fixed
    assert secret_poisson_cohort(1000, 0.05, 3) != secret_poisson_cohort(1000, 0.05, 3)  # the same round: other devices


def test_the_two_epsilons_are_the_accountants_with_and_without_the_sampling_rate():
    ledgers = device_ledgers(TrainConfig(max_grad_norm=CLIP), devices=2000)
    for round_number in range(1, 31):
        record_device_round(ledgers, round_number, 1.1, 0.01)
    delta = ledgers[OUTSIDERS].delta
    assert delta == pytest.approx(1e-5) and delta < 1 / 2000  # min(1e-5, 1 / 10N): below 1/N
    epsilons = epsilons_by_viewer(ledgers)
    assert epsilons["epsilon_outsiders"] == pytest.approx(epsilon_of([(1.1, 0.01, 30)], delta))
    assert epsilons["epsilon_server"] == pytest.approx(epsilon_of([(1.1, 1.0, 30)], delta))
    assert ledgers[COHORT_KNOWN].history == [(1.1, 1.0, 30)]
    assert epsilons["epsilon_outsiders"] < 1 < 30 < epsilons["epsilon_server"]  # amplification: 0.87 against 34.9


def test_the_privacy_statement_names_both_epsilons(tmp_path):
    from fedrec.privacy.ledger import save_run_ledger
    from fedrec.privacy.report import guarantee, write_privacy_report

    ledgers = device_ledgers(TrainConfig(max_grad_norm=CLIP), devices=2000)
    for round_number in (1, 2):
        record_device_round(ledgers, round_number, 1.1, 0.01)
    save_run_ledger(tmp_path, ledgers)
    report = json.loads(write_privacy_report(tmp_path).read_text())
    epsilons = epsilons_by_viewer(ledgers)
    assert {k: report["epsilon_against"][k] for k in epsilons} == pytest.approx(epsilons)
    assert report["epsilon_max"] == pytest.approx(epsilons["epsilon_server"])  # the headline: the weaker guarantee
    statement = guarantee(report)  # what the model card of a release carries
    assert f"outsiders with the release ε={epsilons['epsilon_outsiders']:.3f}" in statement
    assert f"against the server, which sees who took part, ε={epsilons['epsilon_server']:.3f}" in statement


def test_a_central_dp_device_run_draws_secret_cohorts_and_noises_over_the_expected_cohort():
    from conftest import resolved
    from fedrec.config import FederationConfig
    from fedrec.federation.device_shards import DeviceSampling
    from fedrec.federation.strategy import _wrapped, build_strategy

    train, federation = resolved(TrainConfig(model="lstm", dp="central", noise_multiplier=1.0),
                                 FederationConfig(partition="user", device_shards=3, fraction=0.05))
    chain = _wrapped(build_strategy(federation, server_noise=(1.0, CLIP), devices=(1000, 42)))
    sampling = next(s for s in chain if isinstance(s, DeviceSampling))
    (server,) = [s for s in chain if isinstance(s, DeviceCentralDP)]
    assert server.expected_cohort == pytest.approx(50) and server.clipping_norm == CLIP
    assert sampling.cohort(3) != sampling.cohort(3)  # secret draws: the seed does not give them
    plain = next(s for s in _wrapped(build_strategy(federation, devices=(1000, 42))) if isinstance(s, DeviceSampling))
    assert plain.cohort(3) == plain.cohort(3)  # without DP the seed decides, for reproducible runs
