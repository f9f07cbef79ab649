"""train.calibration and evaluate --importance through the real CLI, on a tiny table where one
column carries the label and the others are noise."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain.runs import RunFolder
from tests.cli.eval_projects import copy_project, runs_of
from tests.conftest import invoke


def _write_table(path: Path, rows: int = 300) -> None:
    rng = np.random.default_rng(0)
    signal, noise = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "blue"], rows)
    label = np.where(signal + 0.3 * rng.normal(size=rows) > 0, "yes", "no")
    lines = ["signal,noise,colour,label"]
    rows_ = zip(signal, noise, colour, label, strict=True)
    lines += [f"{s:.4f},{n:.4f},{c},{y}" for s, n, c, y in rows_]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose binary MLP is trained long enough at a high rate to grow over-confident,
    with ``train.calibration: temperature``."""
    root = tmp_path_factory.mktemp("calibrated")
    _write_table(root / "table.csv")
    recipe = {
        "name": "tab",
        "seed": 3,
        "data": {
            "source": "table.csv",
            "target": "label",
            "split": {"validation": 0.25, "test": 0.25},
        },
        "model": {"family": "mlp", "units": [32], "dropout": 0.0},
        "train": {
            "epochs": 15,
            "batch_size": 32,
            "optimizer": {"learning_rate": 0.05},
            "early_stopping": {"enabled": False},
            "tensorboard": False,
            "calibration": "temperature",
        },
    }
    (root / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    regression = {**recipe, "name": "reg", "data": {**recipe["data"], "target": "signal"}}
    (root / "reg.yaml").write_text(yaml.safe_dump(regression))
    with contextlib.chdir(root):
        for args in (["prepare"], ["train"], ["prepare", "--recipe", "reg.yaml"]):
            code, _, err = invoke(*args)
            assert code == 0, f"{args}: {err}"
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "project"
    shutil.copytree(trained, target)
    monkeypatch.chdir(target)
    return target


def test_the_temperature_is_recorded_and_evaluated_both_ways(project: Path) -> None:
    (run,) = runs_of(project, "tab")
    calibration = RunFolder(run).read_info().calibration
    assert calibration is not None and calibration.fitted_on == "validation"
    assert calibration.temperature > 1.0  # 15 epochs at 0.05 leave it over-confident
    assert calibration.log_loss_after < calibration.log_loss_before

    code, out, err = invoke("evaluate", "--json", "--no-plots", "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    scaling = document["temperature_scaling"]
    assert scaling["temperature"] == pytest.approx(calibration.temperature)
    assert (
        scaling["expected_calibration_error"] == document["metrics"]["expected_calibration_error"]
    )
    assert scaling["log_loss"] == document["metrics"]["log_loss"]
    assert scaling["log_loss"] != scaling["log_loss_before"]
    assert "Temperature scaling: T =" in err
    report = (run / "report.md").read_text()
    assert "**Temperature scaling**" in report


def test_importance_ranks_the_signal_column_first(project: Path) -> None:
    code, out, err = invoke("evaluate", "--json", "--importance", "--importance-repeats", "4")
    assert code == 0, err
    importance = json.loads(out)["importance"]
    assert importance["metric"] == "accuracy" and importance["repeats"] == 4
    first, *others = importance["columns"]
    assert first["column"] == "signal" and first["low"] > 0.1
    assert {c["column"] for c in others} == {"noise", "colour"}
    assert all(abs(c["drop"]) < 0.08 for c in others)
    assert "plots/test/importance.png" in json.loads(out)["plots"]
    (run,) = runs_of(project, "tab")
    assert (run / "plots" / "test" / "importance.png").stat().st_size > 1000
    assert "Permutation importance" in err and "signal" in err
    report = (run / "report.md").read_text()
    assert "**Permutation importance**" in report and "| signal |" in report


def test_the_model_card_says_both(project: Path) -> None:
    code, out, err = invoke("evaluate", "--importance", "--no-plots", "--format", "model-card")
    assert code == 0, err
    assert "The probabilities are temperature-scaled" in out
    assert "## Which columns matter" in out


def test_calibrating_a_regressor_is_refused_before_training(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(trained)  # a copy would be another source path, hence another dataset
    code, _, err = invoke("train", "--recipe", "reg.yaml", "--epochs", "1")
    assert code == 2, err
    assert "calibrates a classifier" in err and "regression task" in err
    assert not (trained / "runs" / "reg").exists()  # refused before a run folder was made


def test_importance_of_an_image_model_is_refused(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    with contextlib.chdir(project):
        code, _, err = invoke("evaluate", "--importance", "--no-plots")
    assert code == 2, err
    assert "image inputs, not table columns" in err and "Traceback" not in err


@pytest.mark.slow
def test_exports_answer_the_calibrated_probabilities(project: Path) -> None:
    """export checks each file against model.keras, which holds the temperature: a SavedModel
    or TFLite model without it would differ by far more than float rounding."""
    code, out, err = invoke("export", "--format", "saved_model", "--format", "tflite", "--json")
    assert code == 0, err
    exports = {e["format"]: e for e in json.loads(out)["exports"]}
    assert set(exports) == {"saved_model", "tflite"}
    assert all(e["max_abs_diff"] < 1e-4 and e["agreement"] == 1.0 for e in exports.values())
