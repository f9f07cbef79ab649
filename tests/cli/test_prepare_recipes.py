"""The shipped recipes on the real datasets: each prepares and trains one epoch end to end.

Slow (real data, real training); CI runs them. A recipe whose dataset is not on the machine, or
whose model family has not landed yet, is skipped rather than failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.models import BUILDERS
from tests.conftest import REPO

pytestmark = pytest.mark.slow
runner = CliRunner()

# recipe → (--set overrides that keep one epoch short, train flags, what the manifest must say)
RECIPES: dict[str, tuple[list[str], list[str], dict[str, object]]] = {
    "california_housing": ([], [], {"task": "regression", "kind": "table", "rows": 20_640}),
    "adult_income": ([], [], {"task": "binary", "kind": "table", "test": 16_281}),
    "sms_spam": ([], [], {"task": "binary", "kind": "text"}),
    "melbourne_temperatures": ([], [], {"task": "forecasting", "kind": "sequence", "test": 365}),
    "oxford_flowers12": (
        ["data.image.size=[48,48]", "model.filters=[16,32]"],
        [],
        {"task": "multiclass", "kind": "image", "test": 240},
    ),
    "fashion_mnist_cnn": (
        # one epoch leaves no room for the recipe's 1-epoch warmup (refused, rightly)
        ["model.filters=[8]", "model.dense=[16]", "train.lr_schedule.warmup_epochs=0"],
        ["--batch-size", "512"],
        {"task": "multiclass", "kind": "image", "test": 10_000},
    ),
}
FAMILIES = {"sms_spam": "text", "melbourne_temperatures": "rnn"}


def source_of(recipe: Path) -> Path:
    return (recipe.parent / yaml.safe_load(recipe.read_text())["data"]["source"]).resolve()


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_prepares_and_trains_one_epoch(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = REPO / "recipes" / f"{name}.yaml"
    if not source_of(recipe).exists():
        pytest.skip(f"{source_of(recipe)} is not on this machine")
    family = FAMILIES.get(name)
    if family is not None and family not in BUILDERS:
        pytest.skip(f"model family {family!r} has not landed yet")
    sets, flags, expected = RECIPES[name]
    overrides = [part for value in sets for part in ("--set", value)]
    monkeypatch.chdir(tmp_path)
    prepared = runner.invoke(app, ["prepare", "--recipe", str(recipe), "--json", *overrides])
    assert prepared.exit_code == 0, prepared.stderr
    manifest = json.loads(prepared.stdout)["manifest"]
    assert manifest["task"] == expected["task"]
    assert manifest["features"]["kind"] == expected["kind"]
    if "test" in expected:
        assert manifest["splits"]["test"]["num_examples"] == expected["test"]
    if "rows" in expected:
        assert sum(s["num_examples"] for s in manifest["splits"].values()) == expected["rows"]
    trained = runner.invoke(
        app, ["train", "--recipe", str(recipe), "--epochs", "1", *overrides, *flags]
    )
    assert trained.exit_code == 0, trained.stderr
    run = next((tmp_path / "runs").glob("*/*/model.keras")).parent
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
