"""`dltrain --help` and recipe checks must never load TensorFlow (DESIGN.md, "Two layers")."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO, modules_loaded_by


def loaded_heavy_modules(*args: str) -> list[str]:
    loaded, _ = modules_loaded_by(*args)
    return sorted({m.split(".")[0] for m in loaded} & {"tensorflow", "keras", "tf_keras", "mlflow"})


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["prepare", "--help"],
        ["init", "--help"],
        ["train", "--help"],
        ["tune", "--help"],
        ["tune", "--recipe", "mnist_demo", "--print-recipe"],
        ["evaluate", "--help"],
        ["predict", "--help"],
        ["serve", "--help"],
        ["export", "--help"],
        ["runs", "--help"],
        ["find-lr", "--help"],
        ["verify", "--help"],
        ["compare", "--help"],
        ["train", "--recipe", "mnist_demo", "--print-recipe"],
        ["train", "--recipe", "does-not-exist.yaml"],
    ],
)
def test_light_paths_do_not_import_tensorflow(args: list[str]) -> None:
    assert loaded_heavy_modules(*args) == []


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dltrain", "--version"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    assert result.stdout.startswith("dltrain ")


def test_the_recipe_layer_imports_no_layer_above_it() -> None:
    # recipe/ is read by every stage; an import of one (even inside a function) is an arrow upward
    above = ("data", "models", "training", "evaluation", "tuning", "cli")
    upward = []
    for path in sorted((REPO / "dltrain" / "recipe").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            upward += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[:2] in (["dltrain", a] for a in above)
            ]
    assert upward == []


@pytest.mark.parametrize(
    "command",
    ["", "prepare", "init", "train", "tune", "evaluate", "predict", "export", "runs", "find-lr"]
    + ["serve", "verify", "compare"],
)
def test_help_builds_no_recipe_model(command: str) -> None:
    # Building the recipe's pydantic models cost 0.15 s of the 0.4 s --help took; help needs
    # only the option lists (recipe/choices.py) and names of files (recipe/files.py).
    args = [command, "--help"] if command else ["--help"]
    loaded = {m for m in modules_loaded_by(*args)[0] if m.startswith("dltrain.")}
    # and run.json's record (dltrain/run_info.py), read only where a run is
    heavy = {
        "dltrain.recipe.schema",
        "dltrain.recipe.load",
        "dltrain.recipe.models",
        "dltrain.run_info",
    }
    assert loaded & heavy == set()
    assert "dltrain.cli" in loaded  # the probe did run the CLI
