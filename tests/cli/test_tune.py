"""dltrain tune from the command line: input errors before any trial, a real study end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import RecipeWriter, invoke

SPACE = {
    "train.optimizer.learning_rate": {"log_uniform": [3.0e-3, 3.0e-2]},
    "model.dropout": {"uniform": [0.0, 0.3]},
    "model.filters": [[4], [8]],
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tuned(write_recipe: RecipeWriter, source: Path, **tune: Any) -> Path:
    return write_recipe(source, tune={"num_trials": 3, "space": SPACE, **tune})


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"model.dropuot": {"uniform": [0.1, 0.5]}}, "Did you mean `model.dropout`?"),
        ({"model.dropout": {"uniform": [0.5, 0.1]}}, "the range is empty"),
        ({"train.batch_size": [0, 64]}, "can propose 0"),
        ({"data.scaling": ["unit", "standard"]}, "`data.scaling` cannot be tuned"),
    ],
)
def test_an_invalid_space_exits_2_before_any_trial_runs(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter, space: Any, needle: str
) -> None:
    write_recipe(idx_folder, tune={"space": space})
    code, out, err = invoke("tune")
    assert code == 2
    assert needle in err and out == ""
    assert "Traceback" not in err
    assert not (project / "runs").exists()  # no study, no trial, nothing prepared
    assert not (project / "data").exists()


def test_a_recipe_without_a_tune_section_says_how_to_write_one(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_recipe(idx_folder)
    code, _, err = invoke("tune")
    assert code == 2
    assert "has no `tune:` section" in err and "log_uniform" in err


def test_dry_run_shows_the_plan_and_touches_nothing(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    tuned(write_recipe, idx_folder, sampler="grid", space={"train.batch_size": [16, 32, 64]})
    code, out, err = invoke("tune", "--dry-run", "--json", "--trials", "10")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["grid_size"] == 3 and plan["num_trials"] == 3  # a grid caps the trial count
    assert plan["direction"] == "maximize" and plan["pruner"] == "hyperband"
    assert plan["space"] == {"train.batch_size": {"choice": [16, 32, 64]}}
    assert "runs/tiny/tune/study.db" in plan["storage"]
    assert "Search space" in err and not (project / "runs").exists()


def test_an_unreachable_storage_is_a_clear_error(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    tuned(write_recipe, idx_folder)
    code, _, err = invoke("tune", "--storage", "postgresql://dltrain:secret@127.0.0.1:9/none")
    assert code == 2
    assert "Cannot open study storage postgresql://dltrain:***@127.0.0.1:9/none" in err
    assert "secret" not in err  # the password never reaches logs
    code, _, err = invoke("tune", "--storage", "not a url")
    assert code == 2 and "is not a database URL" in err


def test_a_malformed_storage_url_never_echoes_its_password(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every shape of tests/test_credentials.py, pointed at a closed local port so that no
    lookup waits on the network: the plan, the JSON, the error and --debug's traceback."""
    from tests.test_credentials import MALFORMED

    tuned(write_recipe, idx_folder)
    for given, pieces in MALFORMED:
        url = given.replace("db.example", "127.0.0.1:9")
        # --debug sets it for the whole process: clear it for each URL, and (setenv records what
        # was there before) leave none behind for the tests after this one
        monkeypatch.setenv("DLTRAIN_DEBUG", "")
        runs = [
            ("plan", invoke("tune", "--storage", url, "--dry-run", "--json"), 0),
            ("open", invoke("tune", "--storage", url, "--json"), 2),
            ("debug", invoke("--debug", "tune", "--storage", url), 2),
        ]
        for what, (code, out, err), expected in runs:
            assert code == expected, f"{url} ({what}): {err}"
            assert "internal error" not in err, f"{url} ({what}): {err}"
            for piece in pieces:
                assert piece not in out + err, f"{url} ({what}) shows {piece!r}: {out}{err}"
            if what == "plan":
                assert "***" in json.loads(out)["storage"]
            else:
                assert "Traceback" in err if what == "debug" else "Traceback" not in err


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_a_three_trial_study_end_to_end(
    project: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    write_recipe(
        idx_folder,
        train={"epochs": 2, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
        tune={"num_trials": 3, "space": SPACE},
    )
    done = run("dltrain", "tune", "--json", "--jobs", "3", cwd=project)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert len(document["trials"]) == 3 and document["session"]["trials_run"] == 3
    assert {t["state"] for t in document["trials"]} <= {"complete", "pruned"}
    assert "Prepared the data once" in done.stderr  # tune prepared it; trials reused it
    folder = project / "runs/tiny/tune/tiny"
    for name in ("best.yaml", "summary.json", "trials.csv", "history.png", "intermediate.png"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "summary.json").read_text()) == document
    for trial in document["trials"]:  # each trial is an ordinary, self-describing run
        info = json.loads((Path(trial["run_dir"]) / "run.json").read_text())
        assert info["tune"] == {
            "study": "tiny",
            "trial": trial["number"],
            "params": trial["params"],
        }
        assert 1 <= trial["epochs_run"] <= 2
    best = document["best"]
    assert best["value"] == max(t["value"] for t in document["trials"] if t["state"] == "complete")

    # Optuna's own CLI reads the study.
    optuna_cli = subprocess.run(
        [
            str(Path(sys.executable).with_name("optuna")),
            "trials",
            "--storage",
            document["storage"],
            "--study-name",
            "tiny",
            "-f",
            "json",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert optuna_cli.returncode == 0, optuna_cli.stderr
    assert len(json.loads(optuna_cli.stdout)) == 3

    # best.yaml trains as it is, on the data tune prepared (in this process: tune's trials
    # were the processes of their own)
    code, out, err = invoke("train", "--recipe", best["recipe"], "--epochs", "1", "--json")
    assert code == 0, err
    recipe = yaml.safe_load((Path(json.loads(out)["run"]) / "recipe.yaml").read_text())
    assert recipe["model"]["filters"] == best["params"]["model.filters"]
    assert (
        recipe["train"]["optimizer"]["learning_rate"]
        == best["params"]["train.optimizer.learning_rate"]
    )
