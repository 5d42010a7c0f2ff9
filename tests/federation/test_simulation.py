"""`fedrec simulate` end to end on Flower's simulation engine: real Ray workers, small data."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

SMALL = ["--dim", "8", "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--no-release-gate"]  # the gate: test_federated_audit


def fedrec(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, env=env)


def resumed_and_unbroken(args: list[str], tmp_path: Path) -> tuple[Path, Path]:
    """The same 2-round simulation twice: stopped after round 1 and resumed, and straight
    through. Returns both run directories."""
    out, unbroken = tmp_path / "run", tmp_path / "unbroken"
    first = fedrec("simulate", *args, "--rounds", "1", "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = fedrec("simulate", "--resume", str(out), "--rounds", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = fedrec("simulate", *args, "--rounds", "2", "--out", str(unbroken))
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["complete"] is True
    return out, unbroken


def test_mf_simulation_writes_rounds_checkpoints_and_never_ships_user_vectors(chain_file, tmp_path):
    out = tmp_path / "run"
    result = fedrec(
        "simulate", "--model", "mf", "--data", str(chain_file), "--partition", "store", "--num-clients", "3",
        "--rounds", "2", "--local-epochs", "2", *SMALL, "--out", str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "metrics.json").read_text())
    assert document["protocol"] == "full-ranking-leave-one-out"
    assert document["complete"] is True
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert all("wall_seconds" in r for r in document["rounds"])
    # MF is evaluated by its stores, with their private user vectors (no server fold-in).
    assert all({"hr@10", "ndcg@10"} <= set(r["client_metrics"]) and "hr@10" not in r for r in document["rounds"])
    assert {"hr@10", "ndcg@10", "mrr"} <= set(document["metrics"])
    checkpoint = torch.load(out / "checkpoints" / "round-0002.pt", weights_only=True)
    assert set(checkpoint["state"]) == {"item_embedding.weight", "item_bias.weight"}
    assert len(list((out / "client_state").glob("*.pt"))) == 3  # one private state per store


def test_resume_continues_from_the_last_round_not_from_zero(chain_file, tmp_path):
    out = tmp_path / "run"
    first = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), "--num-clients", "2", "--rounds", "1", *SMALL, "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint_one = torch.load(out / "checkpoints" / "round-0001.pt", weights_only=True)
    round_one = checkpoint_one["state"]
    # As written by a fedrec from before --attribute-buckets existed: the run still resumes.
    del checkpoint_one["config"]["attribute-buckets"]
    torch.save(checkpoint_one, out / "checkpoints" / "round-0001.pt")

    resumed = fedrec("simulate", "--resume", str(out), "--rounds", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    document = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in document["rounds"]] == [1, 2, 3]
    # round 1 was not re-run: its checkpoint is untouched
    again = torch.load(out / "checkpoints" / "round-0001.pt", weights_only=True)["state"]
    assert all(torch.equal(round_one[k], again[k]) for k in round_one)
    assert document["config"]["model"] == "lstm" and document["config"]["dim"] == 8

    # The resumed run ends where an unbroken one does: the server's momentum was restored too
    # (restarted from zero, round 2 moves the model differently).
    unbroken = tmp_path / "unbroken"
    straight = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), "--num-clients", "2", "--rounds", "3", *SMALL, "--out", str(unbroken))
    assert straight.returncode == 0, straight.stderr[-3000:]
    resumed_end, unbroken_end = (torch.load(d / "checkpoints" / "round-0003.pt", weights_only=True) for d in (out, unbroken))
    assert resumed_end["server_optimizer"], "FedAvgM's momentum belongs in the checkpoint"
    assert all(torch.equal(resumed_end["state"][k], unbroken_end["state"][k]) for k in unbroken_end["state"])


def test_starting_over_an_existing_run_is_refused_without_touching_it(chain_file, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"round": 1, "state": {}, "history": [], "config": {}}, out / "checkpoints" / "round-0001.pt")
    before = (out / "checkpoints" / "round-0001.pt").read_bytes()
    result = fedrec("simulate", "--model", "lstm", "--data", str(chain_file), "--rounds", "1", "--out", str(out))
    assert result.returncode == 2
    assert "--resume" in result.stderr
    assert (out / "checkpoints" / "round-0001.pt").read_bytes() == before


def test_a_killed_run_resumes_after_its_last_checkpoint(chain_file, tmp_path):
    out = tmp_path / "run"
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    command = [exe, "simulate", "--model", "lstm", "--data", str(chain_file), "--num-clients", "2", "--rounds", "40", *SMALL,
               "--keep-checkpoints", "0", "--out", str(out)]  # every round's kept, to compare round 1's (pruning: test_checkpoint_retention)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = out / "checkpoints" / "round-0001.pt"
        for _ in range(1200):  # poll up to ~10 minutes for round 1's checkpoint
            if first.exists() or process.poll() is not None:
                break
            time.sleep(0.5)
        assert first.exists(), "round 1 never finished"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: driver and its Ray processes
        process.wait()
    done_before_kill = sorted(p.name for p in (out / "checkpoints").glob("round-*.pt"))
    assert "round-0040.pt" not in done_before_kill  # killed mid-run
    round_one_before = (out / "checkpoints" / "round-0001.pt").read_bytes()

    resumed = fedrec("simulate", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    document = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in document["rounds"]] == list(range(1, 41))
    assert document["complete"] is True
    # rounds finished before the kill were kept, not re-run from zero
    assert (out / "checkpoints" / "round-0001.pt").read_bytes() == round_one_before


def test_a_dp_simulation_says_each_thing_once_with_the_time_left(chain_file, tmp_path):
    result = fedrec(
        "simulate", "--model", "mf", "--data", str(chain_file), "--num-clients", "2", "--rounds", "2",
        *SMALL, "--dp", "--noise-multiplier", "1.0", "--out", str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Every Flower line went out through a second handler too (Opacus' logging.basicConfig), in this format.
    assert not re.search(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d:", result.stderr, re.MULTILINE)
    assert "DEBUG" not in result.stderr and "[ROUND" not in result.stderr  # Flower's banners are -v only
    # The noise is every store's secret: no store repeats Opacus' advice about insecure generators.
    assert "Secure RNG" not in result.stderr and "cryptographically secure" not in result.stderr
    rounds = [line for line in result.stderr.splitlines() if "[fedrec.server] round " in line]
    assert len(rounds) == 2
    assert re.search(r"~\d+ (s|min) left$", rounds[0]) and "left" not in rounds[1]


def test_the_mlp_federates_every_parameter_under_dp(chain_file, tmp_path):
    """--model mlp through the simulation engine with DP-SGD on each store: every parameter
    of the pooled encoder travels (no recurrent layer), each store keeps a ledger."""
    out = tmp_path / "run"
    result = fedrec("simulate", "--model", "mlp", "--data", str(chain_file), "--num-clients", "2", "--rounds", "2",
                    *SMALL, "--prior-noise", "0", "--vocab-size", "0", "--dp", "--noise-multiplier", "1.0", "--out", str(out))

    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "metrics.json").read_text())
    assert document["complete"] is True and document["model"] == "mlp"
    state = torch.load(out / "checkpoints" / "round-0002.pt", weights_only=True)["state"]
    assert {"pooled.hidden.weight", "pooled.project.weight", "item_embedding.weight", "output.weight"} <= set(state)
    assert not any(name.startswith("rnn.") for name in state)
    report = json.loads((out / "privacy" / "report.json").read_text())
    assert report["epsilon_max"] > 0
