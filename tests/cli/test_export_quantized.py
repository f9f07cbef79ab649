"""dltrain export --quantize: dynamic-range and full-integer TFLite models, loaded back by the
LiteRT interpreter, smaller than the float model, and refused when the deciding metric drops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain.errors import ExitCode
from dltrain.evaluation.quantize import MetricChange, measure_change
from dltrain.evaluation.run_model import open_run
from tests.cli.eval_projects import copy_project, invoke, recipe, runs_of, write_houses


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def exported(out: str) -> dict[str, object]:
    (entry,) = json.loads(out)["exports"]
    assert isinstance(entry, dict)
    return entry


def tensor_types(path: Path) -> tuple[set[str], set[str], set[str]]:
    """The input, output and inner tensor dtypes of a .tflite file, as LiteRT loads it."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    names = (
        {np.dtype(d["dtype"]).name for d in details}
        for details in (
            interpreter.get_input_details(),
            interpreter.get_output_details(),
            interpreter.get_tensor_details(),
        )
    )
    inputs, outputs, inner = names
    return inputs, outputs, inner


def test_an_image_classifier_quantises_both_ways_and_shrinks(project: Path) -> None:
    run = runs_of(project, "bin")[-1]
    reports = {}
    for mode in ("dynamic", "int8"):
        code, out, err = invoke(
            "export", "-r", "bin.yaml", "-f", "tflite", "--quantize", mode, "--json"
        )
        assert code == 0, err
        entry = exported(out)
        report = entry["quantization"]
        assert isinstance(report, dict)
        assert report["mode"] == mode and entry["path"] == str(
            run / "export" / f"model-{mode}.tflite"
        )
        assert (
            report["bytes"]
            == entry["bytes"]
            == (run / "export" / f"model-{mode}.tflite").stat().st_size
        )
        assert report["bytes"] < report["float_bytes"]
        metric = report["metric"]
        assert metric["metric"] == "accuracy" and metric["examples"] == 60  # the validation split
        assert metric["drop"] == pytest.approx(metric["float"] - metric["quantized"])
        assert metric["drop"] <= metric["max_drop"] == 0.01
        assert f"{mode}: " in err and "% of the float TFLite model's" in err
        reports[mode] = report
    assert reports["int8"]["calibration_examples"] == 180  # the whole (small) training split
    assert reports["dynamic"]["calibration_examples"] == 0

    inputs, outputs, inner = tensor_types(run / "export" / "model-int8.tflite")
    assert inputs == {"uint8"} and outputs == {"float32"}  # raw pixels in, probabilities out
    assert "int8" in inner and reports["int8"]["fully_integer"] is True
    metadata = json.loads((run / "export" / "metadata.json").read_text())
    assert {"tflite-dynamic", "tflite-int8"} <= set(metadata["exports"])
    assert metadata["exports"]["tflite-int8"]["quantization"] == reports["int8"]


def test_a_table_model_quantises_and_reports_rmse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numbers only (int8 takes no text input); wide enough that dynamic range quantises its
    weights (TFLite leaves a tensor under 1,024 weights float)."""
    monkeypatch.chdir(tmp_path)
    write_houses(tmp_path / "houses.csv", 200, seed=4)
    document = recipe("num", "houses.csv")
    document["data"] = {
        "source": "houses.csv",
        "target": "price",
        "columns": {"house_id": {"type": "ignore"}, "district": {"type": "ignore"}},
        "split": {"validation": 0.2, "test": 0.2},
    }
    document["model"] = {"family": "mlp", "units": [64, 64], "dropout": 0.0}
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(document))
    for args in (["prepare"], ["train", "--lr", "0.05"]):
        code, _, err = invoke(*args)
        assert code == 0, err
    # int8 rounds the activations of a head that outputs dollars: a few % of RMSE here, beyond
    # the default 2% (which refuses it), within a tolerance set for it
    for mode, limit in (("dynamic", 0.02), ("int8", 0.25)):
        flags = [] if mode == "dynamic" else ["--max-metric-drop", str(limit)]
        code, out, err = invoke("export", "-f", "tflite", "--quantize", mode, *flags, "--json")
        assert code == 0, err
        report = exported(out)["quantization"]
        assert isinstance(report, dict)
        assert report["bytes"] < report["float_bytes"]
        metric = report["metric"]
        assert metric["metric"] == "rmse" and metric["examples"] == 40
        assert metric["float"] > 0 and metric["float_mae"] > 0 and metric["quantized_mae"] > 0
        assert metric["drop"] == pytest.approx(
            (metric["quantized"] - metric["float"]) / metric["float"]
        )
        assert metric["drop"] <= metric["max_drop"] == limit
        assert "RMSE" in err and "MAE" in err


def test_a_table_with_categories_quantises_dynamic_and_int8(project: Path) -> None:
    """int8's calibrator feeds one row at a time, which the category encoders take. (int8
    rounds the activations of a head that outputs dollars: its RMSE is not at stake here.)"""
    code, out, err = invoke(
        "export", "-r", "house.yaml", "-f", "tflite", "--quantize", "dynamic", "--json"
    )
    assert code == 0, err
    assert exported(out)["quantization"]["metric"]["metric"] == "rmse"  # type: ignore[index]
    code, out, err = invoke(
        "export",
        "-r",
        "house.yaml",
        "-f",
        "tflite",
        "--quantize",
        "int8",
        "--max-metric-drop",
        "10",
        "--json",
    )
    assert code == 0, err
    report = exported(out)["quantization"]
    assert report["calibration_examples"] == 180  # type: ignore[index]


def test_a_drop_beyond_the_tolerance_is_refused_and_nothing_is_written(project: Path) -> None:
    run = runs_of(project, "bin")[-1]
    # -1: the quantised model would have to gain 100 points of accuracy; no model can
    code, out, err = invoke(
        "export", "-r", "bin.yaml", "-f", "tflite", "--quantize", "int8", "--max-metric-drop", "-1"
    )
    text = " ".join(err.split())
    assert code == ExitCode.FAILED and out == ""
    assert "loses too much on 60 validation examples" in text and "It was not written" in text
    assert not (run / "export").exists() or list((run / "export").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-f", "saved_model", "--quantize", "dynamic"], "applies to TFLite exports only"),
        (["-f", "tflite", "-f", "onnx", "--quantize", "int8"], "onnx was asked for"),
        (["-f", "tflite", "--max-metric-drop", "0.1"], "given without --quantize"),
        (["-f", "tflite", "--quantize", "int8", "--max-metric-drop", "nan"], "finite number"),
        (["-r", "ae.yaml", "-f", "tflite", "--quantize", "dynamic"], "has neither"),
    ],
    ids=["saved_model", "onnx", "drop-alone", "nan", "autoencoder"],
)
def test_bad_combinations_are_refused(project: Path, args: list[str], expected: str) -> None:
    code, _, err = invoke("export", *args)
    assert code == ExitCode.BAD_INPUT, err
    assert expected in " ".join(err.split()) and "Traceback" not in err


def test_the_metric_change_is_measured_in_the_metrics_terms(project: Path) -> None:
    run = open_run(runs_of(project, "tiny")[0])
    y = np.array([0, 1, 2, 2])
    right = np.eye(3)[y]
    wrong = np.eye(3)[[0, 1, 2, 0]]  # one of four wrong: 25 points lost
    change = measure_change(run, "accuracy", (right, wrong), y, 0.01)
    assert change == MetricChange("accuracy", 1.0, 0.75, 0.25, 0.01, 4)
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    rise = measure_change(run, "rmse", (truth + 1.0, truth + 1.1), truth, 0.02)
    assert rise.float_value == pytest.approx(1.0) and rise.quantized_value == pytest.approx(1.1)
    assert rise.drop == pytest.approx(0.1) and rise.quantized_mae == pytest.approx(1.1)


def test_without_the_prepared_data_there_is_nothing_to_check_on(project: Path) -> None:
    info_path = runs_of(project, "bin")[-1] / "run.json"
    info = json.loads(info_path.read_text())
    info["data"]["folder"] = str(project / "gone")  # the run's data, moved away
    info_path.write_text(json.dumps(info))
    shutil.rmtree(project / "data" / "bin")  # nor beside the runs/ folder
    code, _, err = invoke("export", "-r", "bin.yaml", "-f", "tflite", "--quantize", "dynamic")
    text = " ".join(err.split())
    assert code == ExitCode.BAD_INPUT and "Traceback" not in err
    assert "is checked on the run's prepared validation split, which cannot be read" in text
    assert "dltrain prepare --recipe" in text
    code, _, err = invoke("export", "-r", "bin.yaml", "-f", "tflite")  # unquantised still works
    assert code == 0, err
