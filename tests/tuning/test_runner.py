"""The tuner with real studies, real subprocesses and a TensorFlow-free trial (fake_trial.py).

Each trial runs in its own process exactly as with real training; only the training inside it is
simulated, so these tests take seconds. tests/cli/test_tune.py runs real training end to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

import dltrain.tuning.runner as runner
from tests.conftest import RecipeWriter, invoke
from tests.tuning.fake_trial import COMMAND as FAKE_TRIAL
from tests.tuning.fake_trial import LAUNCHER


@pytest.fixture
def project(tmp_path: Path, idx_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "TRIAL_COMMAND", FAKE_TRIAL)
    return tmp_path


def write_tuned(write_recipe: RecipeWriter, source: Path, **tune: Any) -> Path:
    return write_recipe(source, train={"epochs": 3}, tune={"pruner": "none", **tune})


def test_failed_trials_are_recorded_with_their_reason_and_the_study_goes_on(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_tuned(
        write_recipe,
        idx_folder,
        sampler="grid",
        space={"train.batch_size": [13, 17, 19, 32]},  # crash, OOM-kill, diverge, fine
    )
    code, out, err = invoke("tune", "--json", "--jobs", "2")
    assert code == 0, err
    document = json.loads(out)
    trials = {t["params"]["train.batch_size"]: t for t in document["trials"]}
    assert sorted(trials) == [13, 17, 19, 32]  # the grid, each point once
    assert trials[13]["state"] == "fail"
    assert "RuntimeError: simulated crash" in trials[13]["reason"]
    assert trials[17]["state"] == "fail" and "SIGKILL" in trials[17]["reason"]
    assert "out of memory" in trials[17]["reason"]
    assert trials[19]["state"] == "fail" and "diverged" in trials[19]["reason"]
    assert trials[32]["state"] == "complete" and trials[32]["epochs_run"] == 3
    assert document["best"]["trial"] == trials[32]["number"]
    assert document["counts"] == {"fail": 3, "complete": 1}
    log = project / "runs/tiny/tune/tiny/trials" / f"{trials[13]['number']:05d}" / "train.log"
    assert "Traceback" in log.read_text()  # the crash's details are kept for the user
    assert "failed" in err and "simulated crash" in err


def test_a_study_where_every_trial_fails_exits_1(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_tuned(write_recipe, idx_folder, sampler="grid", space={"train.batch_size": [13]})
    code, out, err = invoke("tune")
    assert code == 1, err
    assert "No trial of study 'tiny' completed (1 fail)" in err
    assert "Traceback" not in err


def test_an_objective_training_does_not_log_is_refused_before_any_trial(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_tuned(
        write_recipe,
        idx_folder,
        objective="val_f1",
        num_trials=5,
        space={"train.batch_size": [32, 64]},
    )
    code, _, err = invoke("tune")
    assert code == 2, err
    assert "`tune.objective` is 'val_f1', which training does not log" in err
    assert "val_accuracy" in err  # it lists what is logged
    # checked against the task before the study opens: no trial trained to find it out
    assert not (project / "runs" / "tiny" / "tune" / "study.db").exists()


def test_a_regression_recipe_left_with_the_default_objective_is_refused_before_any_trial(
    project: Path,
) -> None:
    rows = ["size,price"] + [f"{i % 9 + 0.5},{2 * (i % 9) + i % 4}" for i in range(60)]
    (project / "houses.csv").write_text("\n".join(rows) + "\n")
    recipe = {
        "name": "tiny",
        "data": {"source": "houses.csv", "target": "price", "task": "regression"},
        "model": {"family": "mlp", "units": [4]},
        "tune": {"num_trials": 2, "space": {"train.batch_size": [16, 32]}},  # no objective
    }
    (project / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    code, _, err = invoke("tune")
    assert code == 2, err
    message = " ".join(err.split())
    assert "`tune.objective` is 'val_accuracy', which training does not log for a regression" in (
        message
    )
    assert "val_loss" in message
    assert not (project / "runs" / "tiny" / "tune" / "study.db").exists()


def test_a_study_resumed_from_a_changed_recipe_is_refused(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_tuned(write_recipe, idx_folder, num_trials=1, space={"train.batch_size": [32, 64]})
    code, _, err = invoke("tune")
    assert code == 0, err
    study = optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{project}/runs/tiny/tune/study.db"
    )
    assert len(study.trials) == 1
    # Resuming that study from a changed recipe would mix incomparable trials: refused.
    code, _, err = invoke("tune", "--set", "train.epochs=5")
    assert code == 2
    assert "was started from a different recipe: `train.epochs` changed" in err
    assert len(study.trials) == 1
    # The choice is spelled out: a fresh study beside it, named; another name; or delete it.
    assert "--new-study (it will be named 'tiny-2')" in err and "--study-name NAME" in err

    code, out, err = invoke("tune", "--new-study", "--set", "train.epochs=5", "--json")
    assert code == 0, err
    assert "Started a new study 'tiny-2'" in err
    assert json.loads(out)["study"] == "tiny-2"
    assert (project / "runs/tiny/tune/tiny-2/best.yaml").is_file()
    storage = f"sqlite:///{project}/runs/tiny/tune/study.db"
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 1  # left intact
    assert len(optuna.load_study(study_name="tiny-2", storage=storage).trials) == 1


def test_a_study_whose_every_trial_failed_does_not_block_a_corrected_recipe(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_tuned(write_recipe, idx_folder, sampler="grid", space={"train.batch_size": [13]})
    code, _, err = invoke("tune")  # batch 13 crashes every trial
    assert code == 1, err
    write_tuned(write_recipe, idx_folder, sampler="grid", space={"train.batch_size": [32]})
    code, out, err = invoke("tune", "--json")
    assert code == 0, err
    assert "every trial in it failed" in " ".join(err.split())
    document = json.loads(out)
    assert document["study"] == "tiny-2" and document["counts"] == {"complete": 1}
    storage = f"sqlite:///{project}/runs/tiny/tune/study.db"
    failed = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state.name for t in failed.trials] == ["FAIL"]  # kept, with its logs
    # The corrected recipe run again resumes its own study rather than starting a third.
    code, _, err = invoke("tune", "--trials", "2")
    assert code == 0, err
    assert "Resuming study 'tiny-2'" in err


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def test_best_yaml_is_the_recipe_with_the_winning_values_and_train_accepts_it(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    space = {
        "train.optimizer.learning_rate": {"log_uniform": [1.0e-3, 1.0e-1]},
        "model.filters": [[4], [8, 16]],
        "model.dropout": {"uniform": [0.0, 0.4], "step": 0.1},
    }
    write_tuned(write_recipe, idx_folder, sampler="random", num_trials=2, space=space)
    code, out, err = invoke("tune", "--json")
    assert code == 0, err
    best = json.loads(out)["best"]
    best_yaml = Path(best["recipe"])
    assert best_yaml == project / "runs/tiny/tune/tiny/best.yaml"

    code, printed, err = invoke("train", "--recipe", str(best_yaml), "--print-recipe")
    assert code == 0, err
    resolved = flatten(yaml.safe_load(printed))
    base = flatten(yaml.safe_load((project / "runs/tiny/tune/tiny/recipe.yaml").read_text()))
    for path, value in best["params"].items():
        assert resolved[path] == value  # lists stay lists, stepped floats stay round
    changed = {k for k in base if resolved.get(k) != base[k]}
    assert changed <= set(space)  # nothing else moved
    assert isinstance(resolved["model.filters"], list)


def tuner(project: Path, *args: str, epoch_seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "tune", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FAKE_EPOCH_SECONDS": str(epoch_seconds), "PYTHONUNBUFFERED": "1"},
    )


def test_killing_the_tuner_loses_no_finished_trial_and_a_rerun_resumes(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    space = {"train.optimizer.learning_rate": {"log_uniform": [1.0e-3, 1.0e-1]}}
    write_tuned(write_recipe, idx_folder, sampler="random", num_trials=3, space=space)
    process = tuner(project, epoch_seconds=0.4)
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:  # one line per finished trial when not on a terminal
        if "trial   0  complete" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # trial 1 is now training
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    storage = f"sqlite:///{project}/runs/tiny/tune/study.db"
    before = optuna.load_study(study_name="tiny", storage=storage).trials
    finished = {t.number: t.value for t in before if t.state.is_finished()}
    assert sorted(finished) == [0]
    (cut,) = [t for t in before if t.state.name == "RUNNING"]

    code, out, err = invoke("tune", "--json")  # the rerun, in this process
    assert code == 0, err
    document = json.loads(out)
    assert f"Trial(s) {cut.number} were cut short" in err
    trials = {t["number"]: t for t in document["trials"]}
    for number, value in finished.items():
        assert trials[number]["value"] == value  # finished trials are kept as they were
    assert trials[cut.number]["state"] == "fail"
    (retry,) = [t for t in trials.values() if t["retry_of"] == cut.number]
    assert retry["state"] == "complete" and retry["params"] == trials[cut.number]["params"]
    assert document["counts"] == {"complete": 3, "fail": 1}  # 3 trials; the cut one is redone
    assert document["session"]["recovered"] == [cut.number]
    # The orphaned trial process was told to stop when its tuner died, so it never finished.
    assert not (project / f"runs/tiny/tune/tiny/trials/{cut.number:05d}/result.json").exists()


@pytest.mark.slow  # the tuner from the shell, as a user runs it (trials stay fake: seconds)
def test_new_study_from_the_shell_starts_beside_the_blocking_one(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_tuned(write_recipe, idx_folder, num_trials=1, space={"train.batch_size": [32, 64]})

    def shell(*args: str) -> tuple[int, str, str]:
        process = tuner(project, *args, epoch_seconds=0.01)
        out, err = process.communicate(timeout=300)
        return process.returncode, out, " ".join(err.split())

    code, _, err = shell()
    assert code == 0, err
    # (the refusal without --new-study, and resuming by --study-name: the fast tests above)
    code, out, err = shell("--set", "train.epochs=5", "--new-study", "--json")
    assert code == 0, err
    assert "Started a new study 'tiny-2'" in err and json.loads(out)["study"] == "tiny-2"
    study = optuna.load_study(study_name="tiny", storage=json.loads(out)["storage"])
    assert len(study.trials) == 1  # the old study as it was
