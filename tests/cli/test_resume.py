"""Resume and crashes: ``kill -9`` at each write point, then the rerun or ``--resume``.

The kills are real: ``python -m dltrain`` runs with ``DLTRAIN_CRASH_AT`` naming a write point
(dltrain/faults.py), where it sends itself SIGKILL on the real write path. A resumed run is
checked against the same run trained without a break.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

import dltrain.tuning.runner as tuning_runner
from tests.cli.eval_projects import write_houses, write_houses_recipe
from tests.conftest import invoke
from tests.tuning.fake_trial import COMMAND as FAKE_TRIAL
from tests.tuning.fake_trial import LAUNCHER as FAKE_TRIALS_LAUNCHER

pytestmark = pytest.mark.slow  # each test starts TensorFlow in a process of its own


def killed_at(
    point: str, *args: str, cwd: Path, dltrain: tuple[str, ...] = ("-m", "dltrain")
) -> subprocess.CompletedProcess[str]:
    """Run ``dltrain ARGS`` in its own process, killed with SIGKILL at write point ``point``
    (``dltrain``: the interpreter's arguments that start dltrain)."""
    env = {**os.environ, "DLTRAIN_CRASH_AT": point}
    result = subprocess.run(
        [sys.executable, *dltrain, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == -signal.SIGKILL, (point, result.returncode, result.stderr)
    return result


def history(run: Path) -> list[dict[str, float]]:
    with (run / "history.csv").open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def runs(project: Path, name: str) -> list[Path]:
    root = project / "runs" / name
    return sorted(p for p in root.iterdir() if (p / "run.json").is_file())


def write_recipe(project: Path, name: str, **train: Any) -> None:
    """A regression recipe on a small table of house prices (in dollars), 3 epochs, no shuffle,
    so that a resumed run must retrace the uninterrupted one step for step."""
    write_houses_recipe(project / f"{name}.yaml", name=name, **train)


@pytest.fixture
def houses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_houses(tmp_path / "houses.csv", 300, seed=4)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Every setting a resume must carry over: a loss parameter Keras does not save (Huber's delta),
# optimizer parameters, a warmup, a decay and reduce-on-plateau, whose counters decide epoch
# 2's reduction (min_delta so large that every epoch after the first counts as a plateau).
EVERYTHING = {
    "loss": {"name": "huber", "delta": 50_000.0},
    "optimizer": {
        "name": "adamw",
        "learning_rate": 0.05,
        "weight_decay": 0.01,
        "clipnorm": 1e6,
    },
    "lr_schedule": {
        "name": "cosine",
        "warmup_epochs": 1,
        "min_learning_rate": 1e-4,
        "reduce_on_plateau": {"enabled": True, "patience": 1, "min_delta": 1e12},
    },
}


def test_a_resumed_run_retraces_the_uninterrupted_one(houses: Path) -> None:
    write_recipe(houses, "whole", **EVERYTHING)
    write_recipe(houses, "cut", **EVERYTHING)
    for name in ("whole", "cut"):
        code, _, err = invoke("prepare", "--recipe", f"{name}.yaml")
        assert code == 0, err
    code, _, err = invoke("train", "--recipe", "whole.yaml")
    assert code == 0, err
    # killed as epoch 2's checkpoint is being renamed into place: epoch 1 is what survives
    killed_at("train.checkpoint@2", "train", "--recipe", "cut.yaml", cwd=houses)
    code, _, err = invoke("train", "--recipe", "cut.yaml", "--resume")
    assert code == 0, err

    (whole,) = runs(houses, "whole")
    (cut,) = runs(houses, "cut")
    expected, resumed = history(whole), history(cut)
    assert [row["epoch"] for row in resumed] == [0, 1, 2]
    rates = [row["learning_rate"] for row in expected]
    assert rates[2] < rates[1] / 2 * 1.01  # the plateau halved the rate (and the cosine fell)
    for want, got in zip(expected, resumed, strict=True):
        for key in ("loss", "val_loss", "val_mae", "learning_rate"):
            assert got[key] == pytest.approx(want[key], rel=1e-4), (key, want, got)
    info = json.loads((cut / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed"][0]["at_epoch"] == 1


def optimizer_variables(model: Path, optimizer: str) -> list[Any]:
    """An optimizer's saved variables (iterations, learning rate, moments) in a .keras file."""
    with zipfile.ZipFile(model) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        saved = weights[f"{optimizer}/vars"]
        return [np.asarray(saved[str(i)]) for i in range(len(saved))]


def test_a_resumed_gan_keeps_both_optimizers(
    tmp_path: Path, idx_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keras saves no compile settings for a model with its own compile (a GAN's second
    # optimizer): they must come from the recipe, the optimizers' state from the checkpoint.
    # (The noise a GAN draws starts afresh on resume, so its losses are not compared.)
    monkeypatch.chdir(tmp_path)
    for name in ("whole", "cut"):
        recipe = {
            "name": name,
            "seed": 7,
            "data": {"source": str(idx_folder), "split": {"validation": 0.2, "test": 0.2}},
            "model": {
                "family": "gan",
                "latent_dim": 8,
                "filters": [8, 4],
                "samples": 4,
                "discriminator_learning_rate": 0.0004,
            },
            "train": {
                "epochs": 2,
                "batch_size": 32,
                "tensorboard": False,
                "early_stopping": {"monitor": "val_g_loss"},
            },
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        code, _, err = invoke("prepare", "--recipe", f"{name}.yaml")
        assert code == 0, err
    code, _, err = invoke("train", "--recipe", "whole.yaml")
    assert code == 0, err
    killed_at("train.checkpoint@2", "train", "--recipe", "cut.yaml", cwd=tmp_path)
    code, _, err = invoke("train", "--recipe", "cut.yaml", "--resume")
    assert code == 0, err
    whole, cut = (runs(tmp_path, name)[0] / "model.keras" for name in ("whole", "cut"))
    for optimizer in ("optimizer", "d_optimizer"):
        expected, resumed = (
            optimizer_variables(whole, optimizer),
            optimizer_variables(cut, optimizer),
        )
        # iterations: both epochs' steps, the first epoch's counted before the kill
        assert resumed[0] == expected[0] > 0, optimizer
        assert resumed[1] == pytest.approx(expected[1]), optimizer  # the learning rate
    assert optimizer_variables(cut, "d_optimizer")[1] == pytest.approx(0.0004)


# --- kill -9 at each write point of train, then --resume ----------------------------------------


@pytest.fixture
def images(tmp_path: Path, idx_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prepared 3-class image project; its recipe trains a tiny CNN for 3 epochs."""
    recipe = {
        "name": "tiny",
        "seed": 7,
        "data": {"source": str(idx_folder), "split": {"validation": 0.2, "test": 0.2}},
        "model": {"family": "cnn", "filters": [4], "dense": [8], "dropout": 0.0},
        "train": {
            "epochs": 3,
            "batch_size": 32,
            "tensorboard": False,
            "optimizer": {"learning_rate": 0.01},
            "early_stopping": {"monitor": "val_accuracy"},
        },
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("prepare")
    assert code == 0, err
    return tmp_path


def same_weights(a: Path, b: Path) -> bool:
    from dltrain.models.saving import load_model

    left, right = (load_model(p, compile=False).get_weights() for p in (a, b))
    if len(left) != len(right):
        return False
    return all(np.array_equal(x, y) for x, y in zip(left, right, strict=True))


def status_of(project: Path) -> list[str]:
    code, out, err = invoke("runs", "--json")
    assert code == 0, err
    return [row["status"] for row in json.loads(out)["runs"]]


@pytest.mark.parametrize(
    ("point", "survived"),
    [
        ("train.checkpoint@2", 1),  # epoch 2's checkpoint not yet renamed into place
        ("train.state@2", 1),  # epoch 2's checkpoint in place, state.json still epoch 1's
        ("train.best@1", 1),  # state.json names epoch 1 best, best.keras not yet written
        ("train.prune@2", 2),  # state.json at epoch 2, epoch 1's checkpoint not yet removed
        ("train.model", 3),  # every epoch done, model.keras not yet renamed into place
        ("train.record", 3),  # model.keras in place, run.json not yet completed
    ],
)
def test_a_run_killed_at_any_write_point_resumes_losing_at_most_the_current_epoch(
    images: Path, point: str, survived: int
) -> None:
    killed_at(point, "train", cwd=images)
    (run,) = runs(images, "tiny")
    assert status_of(images) == ["killed"]  # not "running" forever
    code, out, err = invoke("train", "--resume", "--json")
    assert code == 0, err
    assert json.loads(out)["run"] == str(run) and runs(images, "tiny") == [run]

    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_run"] == 3
    assert info["resumed"][-1]["at_epoch"] == survived  # nothing lost beyond the current epoch
    assert [row["epoch"] for row in history(run)] == [0, 1, 2]
    checkpoints = run / "checkpoints"
    state = json.loads((checkpoints / "state.json").read_text())
    assert state["epoch"] == 3 and sorted(p.name for p in checkpoints.glob("epoch-*")) == [
        "epoch-0003.keras"
    ]
    # early stopping restores the best epoch: the model and best.keras hold the same weights
    assert info["best"]["epoch"] == state["best_epoch"]
    assert same_weights(run / "model.keras", checkpoints / "best.keras")
    assert status_of(images) == ["completed"]


def test_a_run_killed_before_its_first_checkpoint_is_trained_anew(images: Path) -> None:
    killed_at("train.state", "train", cwd=images)
    code, _, err = invoke("train", "--resume")
    assert code == 2 and "No unfinished run" in err  # nothing to resume: epoch 1 was current
    assert status_of(images) == ["killed"]
    code, _, err = invoke("train")
    assert code == 0, err
    assert status_of(images) == ["killed", "completed"]


def test_a_run_early_stopping_ended_is_finished_not_trained_on(images: Path) -> None:
    # patience 1 and a min_delta no accuracy can make: training stops after epoch 2 of 6
    recipe = yaml.safe_load((images / "dltrain.yaml").read_text())
    recipe["train"]["epochs"] = 6
    recipe["train"]["early_stopping"].update(patience=1, min_delta=10.0)
    (images / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    killed_at("train.model", "train", cwd=images)
    code, out, err = invoke("train", "--resume", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["stopped_by"] == "early_stopping" and result["epochs_run"] == 2
    (run,) = runs(images, "tiny")
    assert len(history(run)) == 2
    assert result["best"]["epoch"] == 1
    assert same_weights(run / "model.keras", run / "checkpoints" / "best.keras")


# --- kill -9 at each write point of prepare, then the rerun -----------------------------------


def verified_dataset(project: Path) -> list[int]:
    """Every split of the prepared dataset, read and checked against its checksums."""
    from dltrain.data.store import open_store

    dataset = open_store(project / "data" / "tiny")
    return [len(dataset.load_split(split)[1]) for split in ("train", "validation", "test")]


@pytest.mark.parametrize("point", ["prepare.shard", "prepare.manifest"])
def test_a_killed_prepare_leaves_no_dataset_that_looks_whole_and_reruns(
    tmp_path: Path, idx_folder: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    recipe = {"name": "tiny", "data": {"source": str(idx_folder)}, "model": {"family": "cnn"}}
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    killed_at(point, "prepare", cwd=tmp_path)
    assert not (tmp_path / "data" / "tiny").exists()
    code, _, err = invoke("train")
    assert code == 2 and "No prepared dataset" in err  # nothing half-written is trusted
    code, _, err = invoke("prepare")
    assert code == 0, err
    sizes = verified_dataset(tmp_path)

    # a rebuild killed before its swap leaves the dataset it would have replaced intact
    manifest = (tmp_path / "data" / "tiny" / "manifest.json").read_text()
    killed_at(point, "prepare", "--force", cwd=tmp_path)
    assert (tmp_path / "data" / "tiny" / "manifest.json").read_text() == manifest
    assert verified_dataset(tmp_path) == sizes
    code, _, err = invoke("prepare", "--force")
    assert code == 0, err
    assert verified_dataset(tmp_path) == sizes


# --- kill -9 at each write point of tune, then the rerun --------------------------------------
# The write points are the tuner's own (dltrain/tuning/runner.py, report.py); its trials are the
# TensorFlow-free stand-in of tests/tuning/fake_trial.py, which speaks the real trial protocol,
# so each kill and rerun costs seconds. Real trials are trained end to end in
# tests/cli/test_tune.py::test_a_three_trial_study_end_to_end.


@pytest.fixture
def study(images: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The image project with a two-trial search of the learning rate, one epoch a trial."""
    recipe = yaml.safe_load((images / "dltrain.yaml").read_text())
    recipe["train"]["epochs"] = 1
    recipe["tune"] = {
        "num_trials": 2,
        "space": {"train.optimizer.learning_rate": [0.005, 0.01]},
        "sampler": "grid",
    }
    (images / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    monkeypatch.setattr(tuning_runner, "TRIAL_COMMAND", FAKE_TRIAL)  # for the rerun, in-process
    return images


def tune_summary(project: Path) -> dict[str, Any]:
    code, out, err = invoke("tune", "--json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    summary = json.loads((project / "runs/tiny/tune/tiny/summary.json").read_text())
    assert summary == document
    return document


@pytest.mark.parametrize(
    ("point", "kept"),
    [
        ("tune.trial_spec@2", 1),  # trial 0 recorded; trial 1 drawn, its spec just written
        ("tune.trial_record@2", 1),  # trial 1 trained and its result written; study not told
        ("tune.report", 2),  # both trials recorded; summary.json not yet written
    ],
)
def test_a_killed_tune_reruns_keeping_every_recorded_trial(
    study: Path, point: str, kept: int
) -> None:
    killed_at(point, "tune", cwd=study, dltrain=("-c", FAKE_TRIALS_LAUNCHER))
    assert not (study / "runs/tiny/tune/tiny/summary.json").exists()
    document = tune_summary(study)
    trials = document["trials"]
    complete = [t for t in trials if t["state"] == "complete"]
    # both values searched, each once to completion: the trials recorded before the kill were
    # kept, a cut-short one was run again with its values
    assert sorted(t["params"]["train.optimizer.learning_rate"] for t in complete) == [0.005, 0.01]
    assert len(trials) - len(complete) == 2 - kept  # the cut-short trial, recorded as failed
    assert document["session"]["trials_run"] == 2 - kept
