"""``dltrain train --folds K`` from the shell: prepare → cross-validate → evaluate → predict
(the cross-validation in a process of its own, the rest in this one)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import invoke
from tests.conftest import run_dltrain as dltrain

pytestmark = pytest.mark.slow


def _project(folder: Path, rows: int = 150) -> None:
    rng = np.random.default_rng(0)
    with (folder / "rows.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "color", "label"])
        for _ in range(rows):
            a, b = rng.normal(), rng.normal()
            writer.writerow([f"{a:.3f}", f"{b:.3f}", rng.choice(["red", "green"]), a + b > 0])
    recipe = {
        "name": "cv",
        "seed": 5,
        "data": {"source": "rows.csv", "target": "label"},
        "model": {"family": "mlp", "units": [8]},
        "train": {"epochs": 1, "batch_size": 16},
    }
    (folder / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def test_folds_then_evaluate_and_predict_on_the_averaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0  # prepare, evaluate, predict: in this process
    trained = dltrain("train", "--folds", "3", "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    document = json.loads(trained.stdout)
    assert document["num_folds"] == 3 and document["method"] == "stratified"
    (run,) = (tmp_path / "runs" / "cv").iterdir()  # one run; the folds are inside it
    assert Path(document["run"]) == run
    held_out = [fold["held_out_examples"] for fold in document["folds"]]
    manifest = json.loads((run / "manifest.json").read_text())
    splits = {name: entry["num_examples"] for name, entry in manifest["splits"].items()}
    assert sum(held_out) == splits["train"] + splits["validation"]  # the test split untouched
    accuracies = [fold["metrics"]["accuracy"] for fold in document["folds"]]
    assert document["summary"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert document["summary"]["accuracy"]["sd"] == pytest.approx(np.std(accuracies, ddof=1))
    assert "mean ± sd" in trained.stderr and "Fold 3/3" in trained.stderr
    for k in (1, 2, 3):
        fold = run / "folds" / f"fold-{k}"
        assert (fold / "model.keras").is_file() and (fold / "history.csv").is_file()
    assert json.loads((run / "cross_validation.json").read_text())["folds"] == document["folds"]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["final"]["val_accuracy"] == pytest.approx(np.mean(accuracies))

    code, out, err = invoke("evaluate", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["num_examples"] == splits["test"]
    assert 0.0 <= metrics["metrics"]["accuracy"] <= 1.0

    (tmp_path / "new.csv").write_text("x1,x2,color\n2.0,1.5,red\n-2.0,-1.0,green\n")
    code, _, err = invoke("predict", "-i", "new.csv", "-o", "out.csv")
    assert code == 0, err
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {r["prediction"] for r in rows} <= {"True", "False"}


def test_too_many_folds_for_the_data_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, rows=30)
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    code, _, err = invoke("train", "--folds", "50")
    assert code == 2, err
    assert "--folds" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "cv").exists() or not any((tmp_path / "runs" / "cv").iterdir())
