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
    for fold, f1 in zip(document["folds"], fold_f1_scores(tmp_path, run), strict=True):
        # evaluate's positive-class F1 beside Keras's metrics, from the fold model itself
        assert fold["metrics"]["f1"] == pytest.approx(f1)
        assert {"precision", "recall", "roc_auc"} <= set(fold["metrics"])
    assert document["summary"]["f1"]["mean"] == pytest.approx(
        np.mean([fold["metrics"]["f1"] for fold in document["folds"]])
    )
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


def fold_f1_scores(project: Path, run: Path) -> list[float]:
    """Each fold model's F1 of the positive class on the rows its fold held out, by sklearn."""
    from sklearn.metrics import f1_score

    from dltrain.data.folds import assign_folds, pool_splits
    from dltrain.data.store import open_store
    from dltrain.models.saving import load_model
    from dltrain.recipe import load_recipe
    from dltrain.training.crossval import fold_request

    recipe = load_recipe(project / "dltrain.yaml", [("train.folds", 3)]).recipe
    dataset = open_store(project / "data" / "cv")
    pool = pool_splits(
        dataset.load_split("train", resample=False), dataset.load_split("validation")
    )
    _, request, _ = fold_request(recipe, dataset.manifest, dataset.manifest.task, pool)
    scores = []
    for fold in assign_folds(len(pool[1]), request):
        model = load_model(run / "folds" / f"fold-{fold.number}" / "model.keras", compile=False)
        inputs = dataset.manifest.model_inputs({k: v[fold.held_out] for k, v in pool[0].items()})
        labels = pool[1][fold.held_out]
        # the last column is P(positive), whether the model answers one column or two
        positive = np.asarray(model.predict(inputs, verbose=0)).reshape(len(labels), -1)[:, -1]
        scores.append(float(f1_score(labels == 1, positive >= 0.5)))
    return scores


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
