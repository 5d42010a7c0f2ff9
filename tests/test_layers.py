"""The import contracts in .importlinter hold, and a planted violation breaks each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the ``fedrec`` package found first on PYTHONPATH=root."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), str(root / ".importlinter"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_layers_import_downwards_and_no_cycles():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("fedrec/models/pop.py", "import fedrec.training.loop", "Layers import downwards only BROKEN"),  # upward
        ("fedrec/privacy/ledger.py", "import fedrec.models.base", "Layers import downwards only BROKEN"),  # models | privacy
        ("fedrec/models/base.py", "import fedrec.models.lstm", "No import cycles between sibling modules or packages BROKEN"),
        # a concrete privacy mode named outside the registry
        ("fedrec/federation/server.py", "from fedrec.privacy.modes.distributed import Distributed",
         "Only the privacy-mode registry imports a concrete mode BROKEN"),
    ],
)
def test_a_planted_violation_breaks_a_contract(tmp_path, module, planted, broken):
    shutil.copytree(ROOT / "fedrec", tmp_path / "fedrec", ignore=shutil.ignore_patterns("__pycache__", "beauty"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted\n", encoding="utf-8")
    result = lint(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert broken in result.stdout, result.stdout
