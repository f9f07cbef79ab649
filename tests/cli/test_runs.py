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
    good, weak = runs_of(project)
    broken = project / "runs" / "tiny" / "29990101-000000-dead"  # a run that never finished
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps({"status": "interrupted", "epochs_run": 0}))
    assert invoke("evaluate", "--run", str(good), "--no-plots")[0] == 0
    code, out, err = invoke("runs", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [r["run"] for r in listed["runs"]] == [good.name, weak.name, broken.name]
    assert [r["status"] for r in listed["runs"]] == ["completed", "completed", "interrupted"]
    assert listed["runs"][0]["metrics"]["accuracy"] > 0.5
    assert listed["runs"][1]["metrics"] == {}  # never evaluated
    assert "accuracy" in err and f"dltrain evaluate --run {weak}" in err  # table, and a hint

    assert invoke("evaluate", "--run", str(weak), "--no-plots")[0] == 0
    code, out, _ = invoke("runs", "--json", "--sort", "accuracy")
    order = [r["run"] for r in json.loads(out)["runs"]]
    assert order == [good.name, weak.name, broken.name]  # best first, unevaluated last
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


def test_runs_stays_light() -> None:
    assert loaded_heavy_modules("runs", "--recipe", "mnist_demo") == []


def test_runs_hides_tune_trials_unless_asked(project: Path) -> None:
    good, weak = runs_of(project)
    info = json.loads((weak / "run.json").read_text())
    (weak / "run.json").write_text(json.dumps({**info, "tune": {"trial": 3}}))  # as tune marks it
    code, out, err = invoke("runs", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [r["run"] for r in listed["runs"]] == [good.name]
    assert listed["hidden_trials"] == 1 and "--trials" in err
    code, out, _ = invoke("runs", "--json", "--trials")
    listed = json.loads(out)
    assert [r["run"] for r in listed["runs"]] == [good.name, weak.name]
    assert listed["hidden_trials"] == 0
