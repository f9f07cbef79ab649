"""Tune trials are run folders beside the user's own runs: commands looking for "the latest run"
skip them, and a trial writes only what tuning needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dltrain.errors import RunError
from dltrain.runs import (
    MODEL_FILE,
    RUN_INFO_FILE,
    is_tune_trial,
    latest_run,
    latest_unfinished_run,
    resolve_run,
)
from tests.conftest import RecipeWriter, invoke


def make_run(root: Path, run_id: str, *, trial: int | None, finished: bool = True) -> Path:
    """A run folder as train writes it: run.json (with a ``tune`` entry for a trial)."""
    folder = root / "runs" / "tiny" / run_id
    folder.mkdir(parents=True)
    info: dict[str, object] = {"recipe": "tiny", "status": "completed" if finished else "running"}
    if trial is not None:
        info["tune"] = {"study": "tiny", "trial": trial, "params": {"model.dropout": 0.1}}
    (folder / RUN_INFO_FILE).write_text(json.dumps(info))
    if finished:
        (folder / MODEL_FILE).write_text("model")
    else:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "state.json").write_text("{}")
    return folder


def test_the_latest_run_is_the_users_train_run_not_a_later_tune_trial(tmp_path: Path) -> None:
    mine = make_run(tmp_path, "20260101-100000-aaaa", trial=None)
    trial = make_run(tmp_path, "20260101-110000-bbbb", trial=3)
    assert is_tune_trial(trial) and not is_tune_trial(mine)
    assert latest_run(tmp_path, "tiny") == mine
    assert latest_run(tmp_path, "tiny", include_trials=True) == trial
    # Named explicitly, a trial is an ordinary run.
    assert resolve_run(trial, tmp_path, "tiny") == trial
    assert resolve_run(None, tmp_path, "tiny") == mine
    newer = make_run(tmp_path, "20260101-120000-cccc", trial=None)
    assert latest_run(tmp_path, "tiny") == newer


def test_only_trials_is_no_latest_run_and_the_error_says_why(tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-110000-bbbb", trial=0)
    make_run(tmp_path, "20260101-110100-dddd", trial=1)
    with pytest.raises(RunError) as caught:
        latest_run(tmp_path, "tiny")
    message = caught.value.message
    assert "2 tune trial run(s) there were left out" in message
    assert "--run PATH" in message


def test_resume_never_picks_a_cut_short_trial(tmp_path: Path) -> None:
    mine = make_run(tmp_path, "20260101-100000-aaaa", trial=None, finished=False)
    cut = make_run(tmp_path, "20260101-110000-bbbb", trial=2, finished=False)
    assert latest_unfinished_run(tmp_path, "tiny") == mine
    assert latest_unfinished_run(tmp_path, "tiny", include_trials=True) == cut
    (mine / "checkpoints" / "state.json").unlink()
    with pytest.raises(RunError):
        latest_unfinished_run(tmp_path, "tiny")


def test_a_run_without_a_readable_run_json_is_not_taken_for_a_trial(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "20260101-100000-aaaa", trial=None)
    (folder / RUN_INFO_FILE).write_text("{not json")
    assert not is_tune_trial(folder)
    (folder / RUN_INFO_FILE).unlink()
    assert latest_run(tmp_path, "tiny") == folder


@pytest.mark.slow
def test_a_real_trial_is_light_and_evaluate_still_takes_the_users_run(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_recipe(
        idx_folder,
        train={"epochs": 2, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
        tune={"num_trials": 1, "pruner": "none", "space": {"model.dropout": [0.0, 0.2]}},
    )
    code, _, err = invoke("prepare")
    assert code == 0, err
    code, out, err = invoke("train", "--json")
    assert code == 0, err
    mine = Path(json.loads(out)["run"])
    # tune in this process (its trial is a process of its own; tune from the shell:
    # tests/cli/test_tune.py::test_a_three_trial_study_end_to_end)
    code, out, err = invoke("tune", "--json")
    assert code == 0, err
    (trial,) = json.loads(out)["trials"]
    trial_dir = Path(trial["run_dir"])
    assert trial["state"] == "complete" and trial["epochs_run"] == 2
    # What tune and `evaluate --run` read is there; what only a train run needs is not.
    for name in ("recipe.yaml", "run.json", "history.csv", "model.keras"):
        assert (trial_dir / name).is_file(), name
    for name in ("checkpoints", "tensorboard", "learning_curves.png", "model_summary.txt"):
        assert not (trial_dir / name).exists(), name
    assert json.loads((trial_dir / "run.json").read_text())["tune"]["trial"] == trial["number"]
    # The user's own run keeps everything.
    for name in ("checkpoints", "tensorboard", "learning_curves.png", "model_summary.txt"):
        assert (mine / name).exists(), name

    code, out, err = invoke("evaluate", "--json")
    assert code == 0, err
    assert Path(json.loads(out)["run"]) == mine  # the trial is newer, yet not "the latest run"
    code, out, err = invoke("evaluate", "--run", str(trial_dir), "--json")
    assert code == 0, err
    assert Path(json.loads(out)["run"]) == trial_dir
