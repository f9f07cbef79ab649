"""dltrain compare: the recipe diff, the metrics table beside the baselines, and its errors,
on run folders written by hand (no training: the command reads YAML and JSON only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dltrain.errors import RunError, UsageError
from dltrain.evaluation.comparison import (
    ABSENT,
    compare_runs,
    flatten,
    recipe_differences,
    render_markdown,
)
from tests.conftest import invoke

RECIPE: dict[str, Any] = {
    "name": "house",
    "seed": 7,
    "data": {"source": "/data/houses.csv", "target": "price"},
    "model": {"family": "mlp", "units": [16], "dropout": 0.0},
    "train": {"epochs": 2, "optimizer": {"name": "adam", "learning_rate": 0.01}},
}


def make_run(
    root: Path,
    run_id: str,
    metrics: dict[str, float] | None,
    *,
    task: str = "regression",
    baselines: dict[str, dict[str, float]] | None = None,
    **recipe_changes: Any,
) -> Path:
    """A finished run folder as train and evaluate leave it, written by hand."""
    run = root / "runs" / "house" / run_id
    run.mkdir(parents=True)
    recipe = json.loads(json.dumps(RECIPE))
    for dotted, value in recipe_changes.items():
        *parents, leaf = dotted.split("__")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    info = {"status": "completed", "epochs_run": 2, "parameters": 145, "seconds": 1.5}
    info["best"] = {"monitor": "val_loss", "epoch": 2, "value": 0.3}
    (run / "run.json").write_text(json.dumps(info))
    (run / "model.keras").write_bytes(b"")
    if metrics is not None:
        document: dict[str, Any] = {"schema_version": 2, "task": task, "metrics": metrics}
        if baselines is not None:
            document["baselines"] = baselines
        (run / "metrics.json").write_text(json.dumps(document))
    return run


def test_flatten_keeps_lists_and_empty_mappings_as_values() -> None:
    flat = flatten({"model": {"units": [16, 8], "augmentation": {}}, "seed": 1})
    assert flat == {"model.units": [16, 8], "model.augmentation": {}, "seed": 1}


def test_recipe_differences_name_only_differing_dotted_keys() -> None:
    other = json.loads(json.dumps(RECIPE))
    other["train"]["optimizer"]["learning_rate"] = 0.05
    other["model"]["units"] = [32]
    other["train"]["tensorboard"] = False  # a key the first recipe lacks
    differences = recipe_differences([RECIPE, other])
    assert [d.key for d in differences] == [
        "model.units",
        "train.optimizer.learning_rate",
        "train.tensorboard",
    ]
    assert differences[1].values == [0.01, 0.05]
    assert differences[2].values == [ABSENT, False]
    assert differences[2].to_json() == {"key": "train.tensorboard", "values": [None, False]}
    assert recipe_differences([RECIPE, json.loads(json.dumps(RECIPE))]) == []


def test_same_setting_spelled_differently_is_not_a_difference() -> None:
    a = {"train": {"learning_rate": 0.001, "epochs": 2, "shuffle": True}}
    b = {"train": {"learning_rate": 1e-3, "epochs": 2.0, "shuffle": 1}}
    assert [d.key for d in recipe_differences([a, b])] == ["train.shuffle"]  # true is not 1


def test_compare_sets_metrics_beside_the_baselines(tmp_path: Path) -> None:
    baselines = {"mean": {"rmse": 90.0, "mae": 70.0}, "gbm": {"rmse": 30.0, "mae": 20.0}}
    a = make_run(tmp_path, "a", {"rmse": 40.0, "mae": 30.0, "r2": 0.7}, baselines=baselines)
    b = make_run(
        tmp_path,
        "b",
        {"rmse": 25.0, "mae": 31.0, "r2": 0.8},
        baselines=baselines,
        train__optimizer__learning_rate=0.05,
    )
    comparison = compare_runs([a, b], "test")
    assert [d.key for d in comparison.differences] == ["train.optimizer.learning_rate"]
    assert comparison.metrics == ["rmse", "mae", "r2"]  # the task's key metrics, in order
    assert comparison.best("rmse") == 1 and comparison.best("mae") == 0
    assert comparison.best("r2") == 1
    document = comparison.to_json()
    rmse = document["metrics"][0]
    assert rmse == {
        "metric": "rmse",
        "values": [40.0, 25.0],
        "best": "b",
        "baselines": {"mean": 90.0, "gbm": 30.0},
    }
    assert document["runs"][0]["baselines"] == baselines
    markdown = render_markdown(comparison)
    assert "| metric | a | b | baseline.mean | baseline.gbm |" in markdown
    assert "| rmse | 40.0000 | **25.0000** | 90.0000 | 30.0000 |" in markdown
    assert "`train.optimizer.learning_rate` | `0.01` | `0.05`" in markdown


def test_compare_without_baselines_and_with_chosen_metrics(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {"rmse": 40.0, "mae": 30.0, "mape": 5.0})
    b = make_run(tmp_path, "b", {"rmse": 40.0, "mae": 29.0, "mape": 6.0})
    comparison = compare_runs([a, b], "test", ["mape", "rmse"])
    assert comparison.baselines == {} and comparison.metrics == ["mape", "rmse"]
    assert comparison.best("rmse") is None  # a tie names no winner
    assert "baseline." not in render_markdown(comparison)
    with pytest.raises(UsageError, match="'rsme' is not a metric.*Did you mean 'rmse'"):
        compare_runs([a, b], "test", ["rsme"])


def test_compare_refuses_what_does_not_compare(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {"rmse": 1.0})
    with pytest.raises(UsageError, match="at least two runs"):
        compare_runs([a], "test")
    with pytest.raises(RunError, match="does not exist"):
        compare_runs([a, tmp_path / "runs" / "house" / "gone"], "test")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RunError, match="is not a run folder"):
        compare_runs([a, plain], "test")
    unevaluated = make_run(tmp_path, "u", None)
    with pytest.raises(RunError, match=f"dltrain evaluate --run {unevaluated}`"):
        compare_runs([a, unevaluated], "test")
    with pytest.raises(RunError, match="--split validation"):
        compare_runs([a, unevaluated], "validation")
    classifier = make_run(tmp_path, "c", {"accuracy": 0.9}, task="binary")
    with pytest.raises(UsageError, match="different tasks.*a: regression, c: binary"):
        compare_runs([a, classifier], "test")


def test_compare_command_writes_tables_json_and_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_run(
        tmp_path, "a", {"rmse": 40.0, "mae": 30.0, "r2": 0.7}, baselines={"mean": {"rmse": 90.0}}
    )
    make_run(tmp_path, "b", {"rmse": 25.0, "mae": 31.0, "r2": 0.8}, train__epochs=3)
    runs = ["runs/house/a", "runs/house/b"]
    code, out, err = invoke("compare", *runs, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["differences"] == [{"key": "train.epochs", "values": [2, 3]}]
    assert "Recipe differences" in err and "train.epochs" in err and "baseline.mean" in err
    assert "note:" in err  # only a's metrics.json has baselines: they are not the same data
    code, out, err = invoke("compare", *runs, "--format", "markdown", "-o", "cmp.md")
    assert code == 0 and out == "", err
    assert (tmp_path / "cmp.md").read_text().startswith("### dltrain compare · 2 runs")
    code, _, err = invoke("compare", *runs, "--output", "x.md")
    assert code == 2 and "--format markdown" in err
    code, _, err = invoke("compare", runs[0], "runs/house/zz")
    assert code == 2 and "runs/house/zz does not exist" in err and "Traceback" not in err
