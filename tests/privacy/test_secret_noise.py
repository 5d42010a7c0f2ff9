"""Noise only the releasing party knows: the keystream's draws have the right law, never repeat
across releases, never leave the process, and two same-seed DP runs differ while two same-seed
plain runs stay identical."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from fedrec.privacy.secret_noise import KEY_BYTES, Purpose, SecretNoise

SMALL = ["--dim", "8", "--batch-size", "32", "--threads", "1"]


def fedrec(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def test_gaussians_are_standard_normal_and_uniforms_never_hit_zero_or_one():
    noise = SecretNoise.fresh()
    draws = noise.standard_normal(200_000, purpose=Purpose.SGD_NOISE, round_number=1, step=0).numpy()
    assert stats.kstest(draws, "norm").pvalue > 1e-4
    uniforms = noise.uniform(200_000, purpose=Purpose.SAMPLING, round_number=1, step=0)
    assert 0.0 < float(uniforms.min()) and float(uniforms.max()) < 1.0


def test_each_purpose_round_and_step_reads_its_own_keystream_and_one_nonce_repeats():
    noise = SecretNoise(bytes(range(KEY_BYTES)))
    draw = lambda purpose, r, s: noise.standard_normal(1000, purpose=purpose, round_number=r, step=s)  # noqa: E731
    base = draw(Purpose.SHARE_NOISE, 3, 0)
    assert torch.equal(base, draw(Purpose.SHARE_NOISE, 3, 0))  # one key and nonce: one stream
    for other in (draw(Purpose.SGD_NOISE, 3, 0), draw(Purpose.SHARE_NOISE, 4, 0), draw(Purpose.SHARE_NOISE, 3, 1)):
        assert abs(float(np.corrcoef(base.numpy(), other.numpy())[0, 1])) < 0.15


def test_two_fresh_generators_never_draw_the_same_noise():
    a, b = (SecretNoise.fresh().standard_normal(1000, purpose=Purpose.SHARE_NOISE, round_number=1, step=0) for _ in range(2))
    assert not torch.equal(a, b)


def test_poisson_sampling_keeps_each_member_at_the_rate():
    kept = SecretNoise.fresh().poisson_sample(100_000, 0.1, round_number=1, step=0)
    assert abs(len(kept) - 10_000) < 5 * (100_000 * 0.1 * 0.9) ** 0.5
    assert len(SecretNoise.fresh().poisson_sample(1000, 0.0, round_number=1, step=0)) == 0


def test_the_key_is_never_pickled_printed_or_short():
    noise = SecretNoise.fresh()
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(noise)
    assert "secret" in repr(noise) and noise._key.hex() not in repr(noise)
    with pytest.raises(ValueError, match="32 bytes"):
        SecretNoise(b"seed=42")


def _model_state(out):
    return torch.load(out / "model.pt", weights_only=True)


@pytest.mark.parametrize("dp", [True, False])
def test_two_same_seed_runs_differ_under_dp_and_match_without(dp, chain_file, tmp_path):
    """The seed decides initialisation and batches; under DP it cannot decide the noise."""
    states = []
    for name in ("first", "second"):
        out = tmp_path / name
        extra = ["--dp", "--noise-multiplier", "1.0"] if dp else []
        result = fedrec("train", "--model", "lstm", "--data", str(chain_file), *SMALL, "--epochs", "1", "--seed", "7",
                        *extra, "--no-release-gate", "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        states.append(_model_state(out))
    flat = [torch.cat([v.float().reshape(-1) for v in _tensors(state)]) for state in states]
    if dp:
        assert float((flat[0] - flat[1]).abs().max()) > 1e-3
    else:
        assert torch.equal(flat[0], flat[1])


def _tensors(state):
    """Every tensor in a saved model, in a fixed order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in _tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in _tensors(item)]
    return []
