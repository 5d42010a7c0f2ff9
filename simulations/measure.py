"""Run a command and record its wall time and peak memory, children included.

Federated runs spread over Ray worker processes, so the peak RSS of one process says
little; this samples the whole process tree every half second.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


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
