"""What a run prints, captured to a file as a user's log of the README's main job would be:
fedrec's format on every line (bar known continuations), no terminal escape codes, no Ray
``(ClientAppActor pid=...)`` prefix, no warning twice; ``-q`` prints no INFO line; the Python
API logs its progress when the caller configured no logging."""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from fedrec import logs

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = ["--rounds", "2", "--num-clients", "3", "--dim", "8", "--batch-size", "16", "--threads", "1"]
MAIN_JOB = ["simulate", "--model", "lstm", "--dp", "distributed", "--target-epsilon", "8"]  # README's main job, small
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) \[[\w.]+\] ")
# A line of a multi-line record (the partition summary, a Python warning's source line) or the
# command's closing lines (print, so they read the same under -q and in a pipe; "fedrec: " when
# the gate blocks the model, which DP noise on this little data sometimes makes it do).
CONTINUATION = re.compile(r"^(  |partition: |\w+ federated on |release gate of |fedrec: release blocked: )")
# Ray's C++ processes report system trouble in their own format straight to the driver's
# stderr (seen: the raylet's "/tmp/ray/... is over 95% full" on a nearly full disk): passed
# through unchanged, not hidden, and never a Python worker's line.
RAY_SYSTEM = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [EWF] \d+ \d+\] \((raylet|gcs_server)\) ")


def log_with_warnings(path: Path) -> Path:
    """A shop log whose loading warns twice (a column varying within users, users too short to
    split): every Ray worker reads it again, as the driver did."""
    rows = [{"user_id": f"u{u}", "item_id": f"sku-{(u + t) % 30}", "timestamp": 1_700_000_000 + 60 * t,
             "note": f"n{(u * t) % 5}"}
            for u in range(120) for t in range(2 if u % 20 == 0 else 5 + u % 5)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def captured_run(*args: str, log_file: Path) -> str:
    """``fedrec ARGS`` with stdout and stderr into one file, as ``> file 2>&1`` does; each Ray
    worker logs a planted warning (tests/fixtures/chatty_worker)."""
    exe = shutil.which("fedrec") or str(Path(sys.executable).with_name("fedrec"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES / "chatty_worker"), os.environ.get("PYTHONPATH", "")])}
    with open(log_file, "w", encoding="utf-8") as sink:
        result = subprocess.run([exe, *args], stdout=sink, stderr=subprocess.STDOUT, env=env, timeout=600)
    text = log_file.read_text(encoding="utf-8")
    assert result.returncode in (0, 3), text[-3000:]  # 3: the gate blocked the model (a verdict, not a failure)
    return text


def warning_messages(text: str) -> list[str]:
    """The message of each warning line in whatever format it came (fedrec's, Flower's coloured
    one, Opacus' root handler's behind a Ray prefix), so a repeat is found across formats."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [re.sub(r"^[\s:]*(\[[\w.]+\])?\s*", "", line.split("WARNING", 1)[1])
            for line in plain.splitlines() if "WARNING" in line]


def test_the_main_job_captured_to_a_file_reads_in_one_format_with_each_warning_once(tmp_path):
    data = log_with_warnings(tmp_path / "shop.csv")

    text = captured_run(*MAIN_JOB, "--data", str(data), *SMALL, "--out", str(tmp_path / "run"), log_file=tmp_path / "out.txt")

    assert "\x1b[" not in text
    assert "pid=" not in text
    strays = [line for line in text.splitlines()
              if not LOG_LINE.match(line) and not CONTINUATION.match(line) and not RAY_SYSTEM.match(line)]
    assert strays == []
    repeated = {message: n for message, n in collections.Counter(warning_messages(text)).items() if n > 1}
    assert repeated == {}
    # The workers' own lines still reach the log (the data warnings are the driver's, said once).
    assert re.search(r"WARNING \[fedrec.client\] planted warning from the worker with pid \d+", text)
    assert re.search(r"WARNING \[py.warnings\] .*UserWarning: planted Python warning", text)
    assert text.count("vary within users and items") == 1
    # Progress where it was silent: Ray's start and the release gate.
    assert re.search(r"INFO \[fedrec.simulate\] starting Ray .*\n.*INFO \[fedrec.simulate\] Ray ready in \d+\.\d s", text)
    assert "release gate, query 2 of 2" in text and "release gate of " in text


def test_quiet_prints_warnings_once_and_the_summary_but_no_info_line(tmp_path):
    data = log_with_warnings(tmp_path / "shop.csv")

    text = captured_run("-q", *MAIN_JOB, "--data", str(data), *SMALL, "--out", str(tmp_path / "run"),
                        log_file=tmp_path / "out.txt")

    lines = text.splitlines()
    assert [line for line in lines if " INFO " in line] == []
    assert "\x1b[" not in text and "pid=" not in text
    assert [line for line in lines
            if not LOG_LINE.match(line) and not CONTINUATION.match(line) and not RAY_SYSTEM.match(line)] == []
    assert len(warning_messages(text)) == len(set(warning_messages(text))) >= 2
    assert any(line.startswith("lstm federated on ") for line in lines)


def test_the_python_api_logs_each_round_when_the_caller_configured_no_logging(chain_file, tmp_path):
    script = (f"import fedrec\nfedrec.simulate({str(tmp_path / 'run')!r}, data={str(chain_file)!r}, rounds=2, "
              "num_clients=3, dim=8, batch_size=16, threads=1, release_gate=False)\n")

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    rounds = [line for line in result.stderr.splitlines() if LOG_LINE.match(line) and "[fedrec.server] round " in line]
    assert [line.split("round ")[1][:3] for line in rounds] == ["1/2", "2/2"]
    assert "Ray ready in" in result.stderr


def test_the_api_handler_is_attached_only_where_the_caller_configured_no_logging(monkeypatch):
    fedrec_logger = logging.getLogger("fedrec")
    for logger in (logging.root, fedrec_logger):
        monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(fedrec_logger, "level", logging.NOTSET)
    monkeypatch.setattr(fedrec_logger, "propagate", True)

    logs.attach_default_handler()
    attached = list(fedrec_logger.handlers)
    logs.attach_default_handler()  # a second call adds nothing

    assert len(attached) == 1 and fedrec_logger.handlers == attached and fedrec_logger.level == logging.INFO
    assert logging.root.handlers == []  # the library never configures the root

    fedrec_logger.handlers = []
    fedrec_logger.setLevel(logging.WARNING)  # the caller's way to silence fedrec, set before the call
    logs.attach_default_handler()
    assert fedrec_logger.level == logging.WARNING

    fedrec_logger.handlers = []
    monkeypatch.setattr(logging.root, "handlers", [logging.NullHandler()])  # the caller configured logging
    logs.attach_default_handler()
    assert fedrec_logger.handlers == []
