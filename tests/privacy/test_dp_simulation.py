"""DP federated runs end to end on Flower's simulation engine: the privacy report after
every run, clients refusing once their budget is spent, and a killed run that resumes
without resetting anybody's epsilon."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from opacus.accountants import RDPAccountant

from conftest import write_chain_sequences

from fedrec.federation.checkpoints import checkpoint_path, load_checkpoint
from fedrec.models import load_model
from fedrec.privacy.ledger import epsilon_of, load_run_ledger

SMALL = ["--dim", "8", "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--no-release-gate"]  # the gate: test_federated_audit


def fedrec_exe() -> str:
    return shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))


def fedrec(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([fedrec_exe(), *args], capture_output=True, text=True, timeout=timeout)


def test_report_after_the_run_and_clients_refuse_past_their_budget(chain_file, tmp_path):
    out = tmp_path / "run"
    first = fedrec(
        "simulate", "--model", "lstm", "--data", str(chain_file), "--num-clients", "2", "--rounds", "2",
        *SMALL, "--dp", "--target-epsilon", "2", "--out", str(out),
    )
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "privacy" / "report.json").read_text())
    assert {"mechanism", "unit", "accountant", "delta", "epsilon_max", "clients"} <= set(report)
    assert len(report["clients"]) == 2
    assert 1.5 < report["epsilon_max"] <= 2.0
    for client in report["clients"]:  # any tool can recompute the guarantee from the history
        fresh = RDPAccountant()
        fresh.history = [tuple(h) for h in client["history"]]
        assert abs(fresh.get_epsilon(delta=client["delta"]) - client["epsilon"]) <= 0.01 * client["epsilon"]
    assert (out / "privacy" / "report.md").exists() and (out / "privacy" / "epsilon_by_round.png").exists()
    # What leaves the run is the last round's: validation picked nothing.
    document = json.loads((out / "metrics.json").read_text())
    assert document["reported_round"] == 2 and "DP" in document["round_selection"]
    assert document["metrics"] == document["rounds"][-1]["metrics"]
    released = load_model(out / "model.pt").state()
    last = load_checkpoint(checkpoint_path(out, 2)).state
    assert all(torch.equal(released[name], tensor) for name, tensor in last.items())

    # The two planned rounds spent the target: a third round is refused by every client,
    # the server says so and finishes the run with the model it had.
    before = load_run_ledger(out)
    extended = fedrec("simulate", "--resume", str(out), "--rounds", "3")
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert "refuses round 3" in extended.stderr and "max-epsilon" in extended.stderr
    document = json.loads((out / "metrics.json").read_text())
    assert document["complete"] is True
    assert document["rounds"][-1]["round"] == 3 and document["rounds"][-1]["refused"] == 2
    after = load_run_ledger(out)
    assert {name: ledger.history for name, ledger in after.items()} == {name: ledger.history for name, ledger in before.items()}
    assert all(ledger.refused and ledger.refused[-1]["round"] == 3 for ledger in after.values())


def test_a_killed_dp_run_resumes_without_resetting_epsilon(chain_file, tmp_path):
    out = tmp_path / "run"
    rounds = 8
    command = [
        fedrec_exe(), "simulate", "--model", "lstm", "--data", str(chain_file), "--num-clients", "2",
        "--rounds", str(rounds), *SMALL, "--dp", "--noise-multiplier", "1.0", "--out", str(out),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        second = out / "checkpoints" / "round-0002.pt"
        for _ in range(1200):
            if second.exists() or process.poll() is not None:
                break
            time.sleep(0.5)
        assert second.exists(), "round 2 never finished"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (out / "checkpoints" / f"round-{rounds:04d}.pt").exists()
    at_kill = {name: ledger.steps for name, ledger in load_run_ledger(out).items()}
    assert at_kill and all(steps > 0 for steps in at_kill.values())

    resumed = fedrec("simulate", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = load_run_ledger(out)
    assert (out / "privacy" / "last_round_asked").read_text() == str(rounds)
    for name, ledger in final.items():
        # Round 0 is the popularity prior release, once; then every round's DP-SGD steps,
        # those before the kill included. Each round number is answered once: a round asked
        # when the kill came is never asked again (the resume goes on after it), so a store
        # that had not answered it trained one round fewer, and none refused a second ask.
        prior = ledger.history[0]
        assert prior[1:] == (1.0, 1) and ledger.rounds[0]["round"] == 0
        per_round = next(r["steps"] for r in ledger.rounds if r["round"] == 1)
        trained = sorted(r["round"] for r in ledger.rounds if r["round"] > 0)
        assert len(trained) in (rounds - 1, rounds) and trained[-1] == rounds and not ledger.refused
        assert ledger.steps >= 1 + len(trained) * per_round > at_kill[name]
        noise, rate, _ = ledger.history[1]
        assert ledger.epsilon >= epsilon_of([prior, (noise, rate, len(trained) * per_round)], ledger.delta) * (1 - 1e-9)


def test_central_dp_cross_device_run_is_accounted_at_the_server(chain_file, tmp_path):
    out = tmp_path / "run"
    result = fedrec(
        "-v", "simulate", "--model", "lstm", "--data", str(chain_file), "--partition", "user", "--fraction", "0.1",
        "--rounds", "3", *SMALL, "--strategy", "fedavg", "--central-dp", "--noise-multiplier", "0.8",
        "--max-grad-norm", "0.5", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "secret Gaussian noise" in result.stderr  # the noise step drew from a secret keystream
    report = json.loads((out / "privacy" / "report.json").read_text())
    (server,) = report["clients"]
    assert server["client"] == "server (central DP)"
    assert server["history"] == [[0.8, 1.0, 3]]  # one release per round, no amplification claimed
    assert report["epsilon_max"] == server["epsilon"] == epsilon_of([(0.8, 1.0, 3)], server["delta"])
    document = json.loads((out / "metrics.json").read_text())
    assert document["rounds"][-1]["epsilon_max"] == report["epsilon_max"]


def test_central_dp_on_device_shards_reports_both_epsilons_and_its_noise_is_not_the_seeds(tmp_path):
    """Devices in 3 shards, the server adding the noise: the run finishes, its report and metrics
    hold the epsilon against outsiders (rate q = 0.5) and against the server (q = 1), and a second
    run with the same --seed ends elsewhere (noise and cohorts are secret draws, not the seed's)."""
    data = write_chain_sequences(tmp_path / "chains.txt", n_users=24, n_items=12)
    models = []
    for name in ("run", "again"):
        out = tmp_path / name
        result = fedrec("simulate", "--model", "lstm", "--data", str(data), "--partition", "user", "--dp", "central",
                        "--noise-multiplier", "1.0", "--device-shards", "3", "--fraction", "0.5", "--rounds", "2",
                        "--seed", "7", *SMALL, "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "secret Gaussian noise" in result.stderr
        models.append(torch.load(out / "model.pt", weights_only=False)["state"])
    report = json.loads((tmp_path / "run" / "privacy" / "report.json").read_text())
    against, delta = report["epsilon_against"], report["delta"]
    assert delta < 1 / 24
    assert against["epsilon_outsiders"] == pytest.approx(epsilon_of([(1.0, 0.5, 2)], delta))
    assert against["epsilon_server"] == pytest.approx(epsilon_of([(1.0, 1.0, 2)], delta)) == report["epsilon_max"]
    assert against["epsilon_outsiders"] < against["epsilon_server"] and "holds against" in against["which_holds"]
    last = json.loads((tmp_path / "run" / "metrics.json").read_text())["rounds"][-1]
    assert (last["epsilon_outsiders"], last["epsilon_server"]) == (against["epsilon_outsiders"], against["epsilon_server"])
    assert "Against whom" in (tmp_path / "run" / "privacy" / "report.md").read_text()
    assert any(not torch.equal(models[0][key], models[1][key]) for key in models[0] if models[0][key].is_floating_point())
