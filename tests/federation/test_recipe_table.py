"""docs/recipes.md is the recipes in code, laid out one table per model (fedrec.federation.recipe_table)."""

from __future__ import annotations

from pathlib import Path

from fedrec.federation.recipe_table import columns, document

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"


def test_the_recipes_page_is_what_the_code_resolves():
    assert DOC.read_text(encoding="utf-8").strip() == document().strip(), (
        "docs/recipes.md is stale: python -m fedrec.federation.recipe_table > docs/recipes.md")


def test_each_column_is_a_resolved_run_and_a_mode_imposes_its_recipe():
    lstm = columns("lstm")
    assert lstm["federated"]["drift_correction"] == "mime" and lstm["federated"]["rounds"] == 100
    distributed = lstm["federated --dp distributed"]
    assert distributed["secagg"] is True and distributed["batch_size"] == lstm["centralised --dp"]["batch_size"]
    assert "federated --dp distributed" not in columns("mf")  # MF keeps user vectors on the store: no joint run
