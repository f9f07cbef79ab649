"""dltrain evaluate through the real CLI: gates and their exit codes, thresholds, baselines,
formats, plots, raw data, and bad input that must leave earlier results alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli.eval_projects import copy_project, invoke, runs_of


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def evaluate_json(*args: str) -> tuple[int, dict, str]:
    code, out, err = invoke("evaluate", "--json", "--no-plots", *args)
    return code, (json.loads(out) if out.strip() else {}), err


def test_gates_decide_the_exit_code(project: Path) -> None:
    good = str(runs_of(project)[0])
    code, document, err = evaluate_json("--run", good, "--require", "accuracy>=0.5")
    assert code == 0, err
    assert document["passed"] is True
    assert document["gates"] == [
        {
            "gate": "accuracy>=0.5",
            "metric": "accuracy",
            "operator": ">=",
            "bound": 0.5,
            "against": None,
            "value": document["metrics"]["accuracy"],
            "passed": True,
        }
    ]
    code, document, err = evaluate_json(
        "--run", good, "--require", "accuracy>=0.5", "--require", "loss<0"
    )
    assert code == 1, err
    assert "gate failed" in err and "loss is" in err and "Traceback" not in err
    assert [g["passed"] for g in document["gates"]] == [True, False]
    assert document["passed"] is False
    saved = json.loads((Path(good) / "metrics.json").read_text())
    assert saved == document  # the failing evaluation is still recorded
    assert "FAIL" in err  # the gates table


def test_recipe_gates_and_per_class_gates(project: Path) -> None:
    code, document, err = evaluate_json("--set", 'evaluate.require=["recall[2]>1.01"]')
    assert code == 1, err
    assert document["gates"][0]["metric"] == "recall[2]"
    # --require adds to the recipe's gates
    code, document, _ = evaluate_json(
        "--set", 'evaluate.require=["accuracy>=0"]', "--require", "f1_macro>=0"
    )
    assert code == 0 and [g["gate"] for g in document["gates"]] == ["accuracy>=0", "f1_macro>=0"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--require", "acuracy>=0.9"], ["does not report", "Did you mean `accuracy`"]),
        (["--require", "accuracy=0.9"], ["does not parse"]),
        (["--require", "recall[cow]>=0.5"], ["class 'cow'", "Its classes: 0, 1, 2"]),
        (["--optimize-threshold", "f1"], ["binary classifier", "multiclass"]),
        (["--set", 'evaluate.require=["accuracy ~ 1"]'], ["evaluate.require", "does not parse"]),
        (["--data", "raw", "--split", "test"], ["give one"]),
        (["--run", "runs/tiny/nope"], ["does not exist"]),
    ],
)
def test_bad_input_exits_2_and_overwrites_nothing(
    project: Path, args: list[str], needles: list[str]
) -> None:
    latest = runs_of(project)[-1]
    (latest / "metrics.json").write_text('{"earlier": true}')
    code, out, err = invoke("evaluate", *args)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle.lower() in err.lower(), err
    assert json.loads((latest / "metrics.json").read_text()) == {"earlier": True}
    assert not (latest / "plots").exists() and not (latest / "threshold.json").exists()


def test_run_without_a_model(project: Path) -> None:
    broken = project / "runs" / "tiny" / "29990101-000000-dead"
    broken.mkdir()
    code, _, err = invoke("evaluate", "--run", str(broken))
    assert code == 2 and "holds no model.keras" in err


def test_threshold_is_chosen_on_validation_and_reused(project: Path) -> None:
    code, document, err = evaluate_json("--recipe", "bin.yaml", "--optimize-threshold", "f1")
    assert code == 0, err
    run = runs_of(project, "bin")[-1]
    stored = json.loads((run / "threshold.json").read_text())
    assert stored["objective"] == "f1" and stored["chosen_on"] == "validation"
    assert document["threshold"]["value"] == stored["threshold"]
    assert document["threshold"]["source"] == "chosen now"
    assert {"precision", "recall", "f1", "specificity"} <= set(document["metrics"])
    _, again, _ = evaluate_json("--recipe", "bin.yaml")
    assert again["threshold"]["source"] == "threshold.json"
    assert again["metrics"] == document["metrics"]
    # a bound out of range is bad input: exit 2, the stored threshold stays
    code, _, err = evaluate_json(
        "--recipe", "bin.yaml", "--optimize-threshold", "recall@precision=1.0001"
    )
    assert code == 2 and "bounds between 0 and 1" in err
    assert json.loads((run / "threshold.json").read_text()) == stored


def test_baseline_comparison_fails_on_a_drop(project: Path) -> None:
    good, weak = runs_of(project)
    code, document, err = evaluate_json("--run", str(weak), "--baseline", str(good))
    assert code == 1, err
    comparisons = {c["metric"]: c for c in document["baseline"]["comparisons"]}
    assert not comparisons["accuracy"]["passed"]
    assert comparisons["accuracy"]["baseline"] > comparisons["accuracy"]["value"]
    assert "fell from" in err
    code, document, err = evaluate_json(
        "--run", str(weak), "--baseline", str(good), "--tolerance", "1.0"
    )
    assert code == 0, err
    code, _, err = evaluate_json("--baseline", str(runs_of(project, "bin")[0]))
    assert code == 2 and "same question" in err


def test_bootstrap_markdown_and_plots(project: Path) -> None:
    code, out, err = invoke("evaluate", "--format", "markdown", "--bootstrap", "200")
    assert code == 0, err
    assert out.startswith("### dltrain evaluate · tiny")
    assert "95% CI" in out and "| accuracy |" in out
    run = runs_of(project)[-1]
    assert (run / "report.md").read_text() == out
    document = json.loads((run / "metrics.json").read_text())
    for name, interval in document["intervals"].items():
        value = document["metrics"][name]
        assert interval["low"] - 1e-9 <= value <= interval["high"] + 1e-9, name
    assert document["bootstrap"] == {"resamples": 200, "confidence": 0.95, "seed": 7}
    expected = {
        "plots/test/confusion_matrix.png",
        "plots/test/roc_curve.png",
        "plots/test/pr_curve.png",
        "plots/test/calibration.png",
        "learning_curves.png",  # drawn by train; evaluate lists it
    }
    assert set(document["plots"]) == expected
    for plot in expected:
        assert (run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_new_raw_data(project: Path) -> None:
    x = np.load(project / "binary.npz")["x"]
    np.savez(project / "fresh.npz", x=x[:30], y=np.arange(30) % 3)
    code, document, err = evaluate_json("--data", "fresh.npz")
    assert code == 0, err
    assert document["split"] is None and document["data"]["kind"] == "file"
    assert document["num_examples"] == 30
    assert (runs_of(project)[-1] / "metrics-data-fresh.json").is_file()
    np.savez(project / "wide.npz", x=np.zeros((4, 28, 28), np.uint8), y=np.zeros(4, np.int64))
    code, _, err = evaluate_json("--data", "wide.npz")
    assert code == 2 and "(28, 28, 1)" in err and "schema differs" in err
    np.savez(project / "labels.npz", x=x[:4], y=np.array([0, 1, 2, 7]))
    code, _, err = evaluate_json("--data", "labels.npz")
    assert code == 2 and "knows 3 classes" in err


def test_evaluate_class_folders_of_images(project: Path) -> None:
    from PIL import Image

    from tests.conftest import synthetic_images

    x, y = synthetic_images(45, seed=5)
    keep = y > 0  # only classes "1" and "2": the folders number them 0 and 1 among themselves
    x, y = x[keep], y[keep]
    np.savez(project / "same.npz", x=x, y=y.astype(np.int64))
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = project / "folders" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    code, from_folders, err = evaluate_json("--data", "folders")
    assert code == 0, err
    _, from_arrays, _ = evaluate_json("--data", "same.npz")
    assert from_folders["num_examples"] == 30
    # matched to the run's classes by name, so the same confusion matrix as integer labels
    assert from_folders["confusion_matrix"] == from_arrays["confusion_matrix"]
    assert [row["support"] for row in from_folders["per_class"]] == [0, 15, 15]
    (project / "folders" / "zebra").mkdir()
    Image.fromarray(x[0]).save(project / "folders" / "zebra" / "z.png")
    code, _, err = evaluate_json("--data", "folders")
    assert code == 2 and "zebra" in err


def test_evaluate_a_run_from_anywhere(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = runs_of(project)[0]
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no dltrain.yaml here: the run's own recipe.yaml is used
    code, document, err = evaluate_json("--run", str(run), "--split", "validation")
    assert code == 0, err
    assert document["run"] == str(run) and document["split"] == "validation"


def test_evaluate_a_labelled_table(project: Path) -> None:
    from sklearn import metrics as sk

    from dltrain.backend import keras
    from tests.cli.eval_projects import write_houses

    write_houses(project / "fresh.csv", 80, seed=11)
    code, document, err = evaluate_json("--recipe", "house.yaml", "--data", "fresh.csv")
    assert code == 0, err
    assert document["task"] == "regression" and document["num_examples"] == 80
    columns = [line.split(",") for line in (project / "fresh.csv").read_text().splitlines()[1:]]
    raw = {
        "house_id": np.array([c[0] for c in columns], dtype=object),
        "rooms": np.array([float(c[1]) if c[1] else np.nan for c in columns], np.float32),
        "area": np.array([float(c[2]) for c in columns], np.float32),
        "district": np.array([c[3] for c in columns], dtype=object),
    }
    price = np.array([float(c[4]) for c in columns])
    model = keras.models.load_model(runs_of(project, "house")[-1] / "model.keras")
    predicted = np.asarray(model.predict_on_batch(raw)).ravel()
    metrics = document["metrics"]
    assert metrics["rmse"] == pytest.approx(sk.root_mean_squared_error(price, predicted), rel=1e-4)
    assert metrics["r2"] == pytest.approx(sk.r2_score(price, predicted), rel=1e-4)
    # per column, what the model filled in or did not know, as predict reports it
    report = {c["column"]: c for c in document["inputs"]}
    assert report["rooms"]["missing"] == int(np.isnan(raw["rooms"]).sum())
    assert set(report) == {"rooms", "area", "district"}  # the identifier is not the model's
    (project / "unlabelled.csv").write_text("house_id,rooms,area,district\nh1,3,50,north\n")
    code, _, err = evaluate_json("--recipe", "house.yaml", "--data", "unlabelled.csv")
    assert code == 2 and "no target column price" in err


def test_autoencoder_errors_threshold_and_anomalies(project: Path) -> None:
    code, document, err = evaluate_json("--recipe", "ae.yaml", "--require", "anomaly_rate<=0.5")
    assert code == 0, err
    assert document["task"] == "reconstruction"
    metrics = document["metrics"]
    assert 0 < metrics["reconstruction_error_median"] <= metrics["reconstruction_error_max"]
    run = runs_of(project, "ae")[-1]
    stored = json.loads((run / "threshold.json").read_text())
    assert stored["kind"] == "anomaly" and stored["percentile"] == 99.0
    assert metrics["anomaly_threshold"] == stored["threshold"]
    code, _, err = invoke("predict", "-r", "ae.yaml", "-i", "raw/t10k-images-idx3-ubyte.gz",
                          "-o", "scores.jsonl")  # fmt: skip
    assert code == 0, err
    lines = [json.loads(x) for x in (project / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 60
    assert all(x["anomaly"] == (x["reconstruction_error"] > stored["threshold"]) for x in lines)
    code, _, err = evaluate_json("--recipe", "ae.yaml", "--require", "accuracy>=0.5")
    assert code == 2 and "reconstruction_error_mean" in err  # the task's own metrics are listed


def test_a_threshold_asked_of_a_regression_model(project: Path) -> None:
    code, _, err = evaluate_json("--recipe", "house.yaml", "--optimize-threshold", "f1")
    assert code == 2 and "regression model" in err and "no classes" in err
    code, _, err = invoke("predict", "-r", "house.yaml", "-i", "houses.csv", "-o", "p.csv",
                          "--threshold", "0.5")  # fmt: skip
    assert code == 2 and "binary classifiers" in err
    assert not (project / "p.csv").exists()
