"""The run folder's contract: the file names every command and script relies on, in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dltrain.errors import RecipeError, RunError
from dltrain.runs import RunFolder, StudyFolder, latest_unfinished_run, resolve_recipe_and_run


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


def saved_run(workdir: Path, recipe: dict[str, Any], *, finished: bool = True) -> RunFolder:
    """A run folder as train leaves it, as far as finding its recipe and model goes."""
    run = RunFolder(workdir / "runs" / "tiny" / "20260101-120000-ab12")
    run.path.mkdir(parents=True)
    run.recipe.write_text(yaml.safe_dump(recipe))
    if finished:
        run.model.write_text("model")
    return run


SAVED = {
    "name": "tiny",
    "seed": 7,
    "data": {"source": "/data/raw"},
    "evaluate": {"batch_size": 64},
}


def test_a_run_named_from_anywhere_is_read_with_the_recipe_it_saved(tmp_path: Path) -> None:
    run = saved_run(tmp_path / "project", SAVED)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no dltrain.yaml here
    loaded, run_dir = resolve_recipe_and_run(None, run.path, elsewhere, [("evaluate.top_k", 2)])
    assert run_dir == run.path and loaded.path == run.recipe
    assert (loaded.recipe.name, loaded.recipe.seed) == ("tiny", 7)
    assert (loaded.recipe.evaluate.batch_size, loaded.recipe.evaluate.top_k) == (64, 2)


def test_a_saved_recipe_another_version_wrote_still_gives_the_parts_reading_needs(
    tmp_path: Path,
) -> None:
    run = saved_run(tmp_path, {**SAVED, "train": {"epochs": 3, "warp_speed": True}})
    loaded, run_dir = resolve_recipe_and_run(None, Path(run.path.name), run.path.parent)
    assert run_dir == run.path and loaded.path == run.recipe  # read in place, no temporary copy
    assert loaded.recipe.evaluate.batch_size == 64 and loaded.recipe.seed == 7
    assert loaded.recipe.train.epochs == 10  # the section that failed is left at its defaults


def test_when_even_those_parts_fail_the_whole_recipes_error_is_reported(tmp_path: Path) -> None:
    broken = {**SAVED, "data": {"source": "/data/raw", "bogus": 1}, "train": {"warp": 1}}
    run = saved_run(tmp_path, broken)
    with pytest.raises(RecipeError) as caught:
        resolve_recipe_and_run(None, run.path, tmp_path)
    assert "`data.bogus`" in caught.value.message and "`train.warp`" in caught.value.message
    assert str(run.recipe) in caught.value.message


def test_the_working_directorys_recipe_wins_over_the_runs(tmp_path: Path) -> None:
    run = saved_run(tmp_path, SAVED)
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump({**SAVED, "seed": 99}))
    loaded, _ = resolve_recipe_and_run(None, run.path, tmp_path)
    assert loaded.path == tmp_path / "dltrain.yaml" and loaded.recipe.seed == 99


def test_a_missing_or_unfinished_run_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="does not exist"):
        resolve_recipe_and_run(None, Path("runs/tiny/nope"), tmp_path)
    run = saved_run(tmp_path, SAVED, finished=False)
    with pytest.raises(RunError, match="holds no model.keras"):
        resolve_recipe_and_run(None, run.path, tmp_path)
