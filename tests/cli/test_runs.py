"""dltrain runs: the recipe's runs side by side, sorted by a metric, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.eval_projects import copy_project, invoke, runs_of
from tests.test_light_cli import loaded_heavy_modules


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def test_runs_lists_sorts_and_reports_metrics(project: Path) -> None:
    good, second, weak = runs_of(project)
    for run in (good, weak):
        assert invoke("evaluate", "--run", str(run), "--no-plots")[0] == 0
    code, out, err = invoke("runs", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [r["run"] for r in listed["runs"]] == [good.name, second.name, weak.name]
    assert listed["runs"][1]["metrics"] == {}  # never evaluated
    assert all(r["status"] == "completed" and r["epochs"] == 1 for r in listed["runs"])
    accuracy = {r["run"]: r["metrics"]["accuracy"] for r in listed["runs"] if r["metrics"]}
    assert accuracy[good.name] > accuracy[weak.name]
    assert "accuracy" in err and "dltrain evaluate --run" in err  # table, and a hint

    code, out, _ = invoke("runs", "--json", "--sort", "accuracy")
    order = [r["run"] for r in json.loads(out)["runs"]]
    assert order == [good.name, weak.name, second.name]  # best first, unevaluated last
    code, out, _ = invoke("runs", "--json", "--sort", "loss", "--limit", "1")
    assert [r["run"] for r in json.loads(out)["runs"]] == [good.name]  # lower is better
    code, _, err = invoke("runs", "--sort", "acurracy")
    assert code == 2 and "not a column" in err


def test_runs_of_a_recipe_without_runs(project: Path) -> None:
    code, out, err = invoke("runs", "--recipe", "bin.yaml", "--json", "--split", "validation")
    assert code == 0, err
    assert json.loads(out)["split"] == "validation"
    (project / "other.yaml").write_text((project / "bin.yaml").read_text().replace("bin", "zz"))
    code, out, err = invoke("runs", "--recipe", "other.yaml", "--json")
    assert code == 0 and json.loads(out)["runs"] == [] and "No runs" in err


def test_runs_and_help_of_new_commands_stay_light() -> None:
    for args in (["runs", "--recipe", "mnist_demo"], ["predict", "--help"], ["export", "--help"]):
        assert loaded_heavy_modules(*args) == [], args
