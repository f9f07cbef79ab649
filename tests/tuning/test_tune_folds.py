"""``tune.folds``: a trial trained as K-fold cross-validation scores the folds' mean best value."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dltrain.data.prepare import prepare
from dltrain.recipe import load_recipe
from dltrain.runs import data_dir
from dltrain.tuning.folds import cross_validated_recipe, train_cross_validated
from dltrain.tuning.protocol import TrialSpec
from dltrain.tuning.trial import EpochReporter


class _Study:
    """The Optuna trial as the reporter sees it, recording what reaches the study."""

    def __init__(self) -> None:
        self.reported: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reported.append((value, step))

    def should_prune(self) -> bool:
        return True  # a trial the pruner would stop at once, were it asked


def _spec(tmp_path: Path, folds: int | None) -> TrialSpec:
    rng = np.random.default_rng(1)
    with (tmp_path / "rows.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "label"])
        for _ in range(90):
            a, b = rng.normal(), rng.normal()
            writer.writerow([f"{a:.3f}", f"{b:.3f}", "up" if a > b else "down"])
    tune: dict[str, Any] = {"objective": "val_accuracy", "num_trials": 1, "space": {}}
    if folds is not None:
        tune["folds"] = folds
    recipe = {
        "name": "tf",
        "seed": 2,
        "data": {"source": "rows.csv", "target": "label"},
        "model": {"family": "mlp", "units": [4]},
        "train": {"epochs": 2, "batch_size": 16},
        "tune": tune,
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    loaded = load_recipe(tmp_path / "dltrain.yaml", cwd=tmp_path)
    prepare(loaded.recipe.data, loaded.recipe.seed, data_dir(tmp_path, "tf"))
    return TrialSpec(
        recipe=str(tmp_path / "dltrain.yaml"),
        overrides=[("train.optimizer.learning_rate", 0.02)],
        params={"train.optimizer.learning_rate": 0.02},
        workdir=str(tmp_path),
        study="tf",
        trial_id=1,
        trial_number=0,
        epochs=2,
        objective="val_accuracy",
        direction="maximize",
        pruner={},  # type: ignore[typeddict-item]
        parent_pid=0,
        result=str(tmp_path / "result.json"),
        log="",
    )


def test_without_tune_folds_a_trial_trains_on_the_split(tmp_path: Path) -> None:
    spec = _spec(tmp_path, folds=None)
    assert cross_validated_recipe(spec, load_recipe(Path(spec["recipe"]), cwd=tmp_path)) is None


def test_a_cross_validated_trial_scores_the_mean_of_its_folds_best_epochs(tmp_path: Path) -> None:
    spec = _spec(tmp_path, folds=3)
    folded = cross_validated_recipe(spec, load_recipe(Path(spec["recipe"]), cwd=tmp_path))
    assert folded is not None
    assert folded.recipe.train.folds == 3
    assert folded.recipe.train.optimizer.learning_rate == pytest.approx(0.02)  # the trial's value
    study, events = _Study(), io.StringIO()
    reporter = EpochReporter(study, "val_accuracy", "maximize", events, epochs=2)
    trained = train_cross_validated(spec, folded, reporter)
    run = Path(str(trained["run_dir"]))
    assert run.parent == tmp_path / "runs" / "tf"
    assert json.loads((run / "run.json").read_text())["tune"]["trial"] == 0  # not a user's run
    bests = []
    for k in (1, 2, 3):
        with (run / "folds" / f"fold-{k}" / "history.csv").open() as handle:
            bests.append(max(float(row["val_accuracy"]) for row in csv.DictReader(handle)))
    outcome = reporter.outcome()
    assert outcome["state"] == "complete"  # the never-asked pruner stopped nothing
    assert outcome["value"] == pytest.approx(np.mean(bests))
    assert trained["epochs_run"] == 6 and study.reported == []
    assert len(events.getvalue().splitlines()) == 6  # the live table still sees every epoch
    assert (run / "model.keras").is_file()
