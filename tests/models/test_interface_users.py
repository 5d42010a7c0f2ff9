"""Serving, fold-in and the release audit use models through ``Recommender``'s interface only:
no import of a concrete model module, no ``isinstance`` on a model class (STYLE: the interface
answers). Read from the source with ``ast``; a planted violation is caught."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fedrec.models import model_class, model_names

ROOT = Path(__file__).resolve().parents[2]
INTERFACE_MODULES = {"fedrec.models", "fedrec.models.base", "fedrec.models.registry"}
USERS = sorted([*(ROOT / "fedrec" / "serving").rglob("*.py"), ROOT / "fedrec" / "release" / "audit_run.py"])
MODEL_CLASSES = {model_class(name).__name__ for name in model_names()}


def violations(source: str) -> list[str]:
    """Imports of fedrec.models modules other than the interface's, names imported from the
    package that are model classes, and isinstance / issubclass / type() is on them."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names
                      if a.name.startswith("fedrec.models.") and a.name not in INTERFACE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fedrec.models"):
            if node.module not in INTERFACE_MODULES:
                found.append(f"from {node.module} import ...")
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name in MODEL_CLASSES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass"):
            named = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node.args[1])
                     if isinstance(n, (ast.Name, ast.Attribute))} if len(node.args) == 2 else set()
            found += [f"{node.func.id}(..., {name})" for name in sorted(named & MODEL_CLASSES)]
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and getattr(node.left.func, "id", "") == "type":
            found += [f"type(...) is {n.id}" for n in node.comparators if isinstance(n, ast.Name) and n.id in MODEL_CLASSES]
    return found


@pytest.mark.parametrize("path", USERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_serving_and_the_audit_run_ask_the_interface_never_a_model_class(path):
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("planted", [
    "from fedrec.models.mf import FoldInScorer",
    "import fedrec.models.lstm",
    "from fedrec.models import ItemKNN",
    "def f(model, models):\n    return isinstance(model, (models.LSTMRecommender, int))",
    "def f(model):\n    return type(model) is MatrixFactorization",
])
def test_a_planted_model_class_branch_is_caught(planted):
    source = (ROOT / "fedrec" / "serving" / "recommender.py").read_text(encoding="utf-8") + "\n" + planted + "\n"
    assert violations(source)
