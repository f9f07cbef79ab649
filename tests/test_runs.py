"""The run folder's contract: the file names every command and script relies on, in one place."""

from __future__ import annotations

import json
from pathlib import Path

from dltrain.runs import RunFolder, StudyFolder, latest_unfinished_run


def test_a_run_folder_names_the_files_train_and_evaluate_write(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "runs" / "tiny" / "20260101-120000-ab12")
    names = {
        run.recipe: "recipe.yaml",
        run.info: "run.json",
        run.model: "model.keras",
        run.history: "history.csv",
        run.learning_curves: "learning_curves.png",
        run.summary: "model_summary.txt",
        run.manifest: "manifest.json",
        run.threshold: "threshold.json",
        run.state: "checkpoints/state.json",
        run.best_checkpoint: "checkpoints/best.keras",
        run.checkpoint(3): "checkpoints/epoch-0003.keras",
        run.tensorboard: "tensorboard",
        run.metrics(): "metrics.json",  # the file CI reads
        run.metrics("validation"): "metrics-validation.json",
        run.report(): "report.md",
        run.report("data-fresh"): "report-data-fresh.md",
        run.plots("test"): "plots/test",
        run.export: "export",
    }
    for path, name in names.items():
        assert path == run.path / name


def test_finished_and_resumable_follow_the_files_training_leaves(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "runs" / "tiny" / "20260101-120000-ab12")
    run.checkpoints.mkdir(parents=True)
    assert not run.finished and not run.resumable  # stopped before its first epoch ended
    run.state.write_text("{}")
    assert run.resumable and latest_unfinished_run(tmp_path, "tiny") == run.path
    run.model.write_text("model")
    assert run.finished and not run.resumable


def test_a_trial_is_known_by_its_run_json(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert not run.is_tune_trial  # no run.json: not known to be a trial
    run.info.write_text(json.dumps({"tune": {"study": "s", "trial": 0}}))
    assert run.is_tune_trial


def test_a_study_folder_names_the_files_tune_writes(tmp_path: Path) -> None:
    study = StudyFolder(tmp_path / "runs" / "tiny" / "tune" / "tiny")
    assert study.base_recipe == study.path / "recipe.yaml"
    assert study.best_recipe == study.path / "best.yaml"
    assert study.summary == study.path / "summary.json"
    assert study.trials_csv == study.path / "trials.csv"
    assert study.trial_log(7) == study.path / "trials" / "00007" / "train.log"
    assert study.trial_spec(7).parent == study.trial_result(7).parent == study.trial(7)
    assert study.standby_log(1) == study.path / "trials" / "standby-1.log"
