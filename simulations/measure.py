"""Run a command and record its wall time and peak memory, children included.

Federated runs spread over Ray worker processes, so the peak RSS of one process says
little; this samples the whole process tree every half second.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

RELEASE_BLOCKED = 3  # fedrec's exit status when the run finished and its release gate blocked the model


@dataclass
class Measured:
    returncode: int
    wall_seconds: float
    peak_tree_rss_mb: float


def run_measured(command: list[str], *, log_path=None) -> Measured:
    started = time.perf_counter()
    log = open(log_path, "w") if log_path else None
    process = subprocess.Popen(command, stdout=log or None, stderr=subprocess.STDOUT if log else None)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, total / 2**20)
            except psutil.Error:
                pass
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    if log:
        log.close()
    return Measured(code, time.perf_counter() - started, round(peak, 1))


def run_or_reuse(name: str, command: list[str], run_dir: Path, log_path: Path) -> tuple[dict, dict | None] | None:
    """(metrics.json, measured.json or None) of a benchmark run: reused when run_dir already
    holds a complete run of the same command, resumed when it holds an interrupted simulate run
    (measured.json then times the resumed part), else run and measured now. None when the run
    failed (its log says why)."""
    metrics_file = run_dir / "metrics.json"
    measured_file = run_dir / "measured.json"
    arguments = command[1:]  # without the interpreter's path
    if metrics_file.exists():
        recorded = json.loads(measured_file.read_text()).get("command") if measured_file.exists() else None
        if recorded != arguments:
            raise SystemExit(
                f"{name}: {run_dir} holds a run of another command ({' '.join(recorded) if recorded else 'not recorded'}); "
                "move it away or pick another --out: a benchmark row must come from the command it names."
            )
        if not json.loads(metrics_file.read_text()).get("complete", True):
            if "simulate" not in arguments:
                raise SystemExit(f"{name}: the run in {run_dir} was interrupted and only simulate runs resume; move it away.")
            resume = [*command[: command.index("simulate") + 1], "--resume", str(run_dir)]
            print(f"{name}: resuming the interrupted run\n$", " ".join(resume), flush=True)
            result = run_measured(resume, log_path=log_path.with_suffix(".resumed.log"))
            if result.returncode not in (0, RELEASE_BLOCKED):
                print(f"{name} failed again (exit {result.returncode}); see {log_path.with_suffix('.resumed.log')}", flush=True)
                return None
            earlier = json.loads(measured_file.read_text()) if measured_file.exists() else {}
            measured_file.write_text(json.dumps({**result.__dict__, "command": arguments, "resumed": True,
                                                 "wall_seconds_before": earlier.get("wall_seconds")}, indent=2) + "\n")
        print(f"{name}: reusing {metrics_file}", flush=True)
    else:
        print("$", " ".join(command), flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        measured_file.write_text(json.dumps({"command": arguments}, indent=2) + "\n")
        result = run_measured(command, log_path=log_path)
        if result.returncode not in (0, RELEASE_BLOCKED):  # a blocked release is a finished run
            print(f"{name} failed (exit {result.returncode}); see {log_path}", flush=True)
            return None
        measured_file.write_text(json.dumps({**result.__dict__, "command": arguments}, indent=2) + "\n")
    measured = json.loads(measured_file.read_text())
    return json.loads(metrics_file.read_text()), (measured if "wall_seconds" in measured else None)


def write_table(path: Path, table: dict) -> None:
    """A benchmark's table as JSON beside its runs, and where it went."""
    path.write_text(json.dumps(table, indent=2) + "\n")
    print(f"\nwrote {path}")
