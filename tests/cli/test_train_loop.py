"""The training loop from the real CLI: checkpoints, resume, time budget, dry run, divergence."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain.data.store import open_store
from dltrain.run_info import this_process
from tests.conftest import RecipeWriter, invoke


@pytest.fixture
def project(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> Path:
    write_recipe(idx_folder, train={"epochs": 3, "early_stopping": {"monitor": "val_accuracy"}})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    return tmp_path


def runs(project: Path) -> list[Path]:
    return sorted((project / "runs" / "tiny").iterdir())


def history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_finished_run_holds_everything(project: Path) -> None:
    code, _, err = invoke("train")
    assert code == 0, err
    (run,) = runs(project)
    for name in ("learning_curves.png", "model_summary.txt", "checkpoints/best.keras"):
        assert (run / name).is_file(), name
    assert (run / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 3 and (run / "checkpoints" / state["checkpoint"]).is_file()
    assert len(list((run / "checkpoints").glob("epoch-*.keras"))) == 1  # older ones pruned
    info = json.loads((run / "run.json").read_text())
    assert info["stopped_by"] == "epochs" and info["best"]["monitor"] == "val_accuracy"
    accuracies = [float(row["val_accuracy"]) for row in history(run)]
    assert info["best"]["value"] == pytest.approx(max(accuracies))
    assert info["best"]["epoch"] == accuracies.index(max(accuracies)) + 1
    assert "CPU" in info["device"] and "mixed precision off" in info["device"]


def simulate_kill_after_first_epoch(run: Path) -> None:
    """Make a finished 3-epoch run look like one killed after epoch 1 (as kill -9 leaves it)."""
    (run / "model.keras").unlink()
    state_path = run / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    # epoch 1's checkpoint is gone (pruned); epoch 3's stands in, as a resume only needs a
    # complete model with its optimizer state
    state.update(epoch=1)
    state_path.write_text(json.dumps(state))
    info = json.loads((run / "run.json").read_text())
    # still marked running, by a process that is gone (as after kill -9)
    owner = {**info["owner"], "pid": dead_pid()}
    (run / "run.json").write_text(json.dumps({**info, "status": "running", "owner": owner}))


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_resume_continues_from_the_last_completed_epoch(project: Path) -> None:
    assert invoke("train")[0] == 0
    (run,) = runs(project)
    simulate_kill_after_first_epoch(run)
    code, out, err = invoke("train", "--resume", "--json")
    assert code == 0, err
    assert json.loads(out)["run"] == str(run)
    rows = history(run)
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]  # epochs 2 and 3 replaced, not doubled
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed"][0]["at_epoch"] == 1
    assert (run / "model.keras").is_file()
    assert len(runs(project)) == 1


def test_resume_refuses_finished_runs_and_recipe_changes(project: Path) -> None:
    assert invoke("train")[0] == 0
    (run,) = runs(project)
    code, _, err = invoke("train", "--resume", "--run", str(run))
    assert code == 2 and "finished already" in err
    code, _, err = invoke("train", "--resume", "--lr", "0.1")
    assert code == 2 and "only --epochs and --time-budget" in err
    code, _, err = invoke("train", "--resume")
    assert code == 2 and "No unfinished run" in err


def test_a_run_still_training_is_not_taken_up_twice(project: Path) -> None:
    assert invoke("train")[0] == 0
    (run,) = runs(project)
    simulate_kill_after_first_epoch(run)
    info = json.loads((run / "run.json").read_text())
    alive = this_process().to_json()  # this test's own process: alive
    (run / "run.json").write_text(json.dumps({**info, "owner": alive}))
    code, _, err = invoke("train", "--resume")
    assert code == 2 and "1 still training run(s)" in " ".join(err.split())
    code, _, err = invoke("train", "--resume", "--run", str(run))
    assert code == 2 and "being trained right now" in err and str(os.getpid()) in err
    # once its process is gone, it reads as killed and is resumed
    gone = {**alive, "pid": dead_pid()}
    (run / "run.json").write_text(json.dumps({**info, "owner": gone}))
    code, out, err = invoke("runs", "--json")
    assert code == 0, err
    assert [row["status"] for row in json.loads(out)["runs"]] == ["killed"]
    assert invoke("train", "--resume")[0] == 0


def test_resume_with_more_epochs(project: Path) -> None:
    assert invoke("train")[0] == 0
    (run,) = runs(project)
    simulate_kill_after_first_epoch(run)
    assert invoke("train", "--resume", "--epochs", "4")[0] == 0
    assert len(history(run)) == 4
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["epochs"] == 3


def test_time_budget_stops_gracefully(project: Path) -> None:
    code, out, err = invoke("train", "--epochs", "50", "--time-budget", "0.5s", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["stopped_by"] == "time_budget" and result["epochs_run"] < 50
    assert "time budget" in err
    (run,) = runs(project)
    assert (run / "model.keras").is_file()


def test_a_schedule_paced_by_the_budget_resumes_where_its_time_stood(project: Path) -> None:
    paced = ("--time-budget", "1h", "--lr-schedule", "cosine")
    pace = ("--set", "train.lr_schedule.pace=time_budget")
    assert invoke("train", *paced, *pace)[0] == 0
    (run,) = runs(project)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert 0 < state["schedule_progress"] < 0.01  # seconds of an hour
    rates = [float(row["learning_rate"]) for row in history(run)]
    # an hour's budget: the epochs lead, epoch 2 ends two-thirds along the cosine
    assert rates[1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 2 / 3)), rel=1e-3)
    # as if killed after epoch 1 with 90% of the budget spent: the resumed epochs run at the
    # cosine's last tenth, not where their steps are
    simulate_kill_after_first_epoch(run)
    state_path = run / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "schedule_progress": 0.9}))
    code, _, err = invoke("train", "--resume", "--time-budget", "1h")
    assert code == 0, err
    resumed = [float(row["learning_rate"]) for row in history(run)]
    end_of_cosine = 0.01 * 0.5 * (1 + math.cos(math.pi * 0.9))
    assert resumed[0] == pytest.approx(rates[0])
    assert all(rate <= end_of_cosine for rate in resumed[1:]), (resumed, end_of_cosine)
    assert json.loads(state_path.read_text())["schedule_progress"] >= 0.9


def test_bad_time_budget_is_a_recipe_error(project: Path) -> None:
    code, _, err = invoke("train", "--time-budget", "soon")
    assert code == 2 and "90s, 10m or 1h30m" in err


def test_dry_run_trains_nothing(project: Path) -> None:
    code, out, err = invoke("train", "--dry-run", "--json", "--lr-schedule", "cosine")
    assert code == 0, err
    report = json.loads(out)
    assert report["steps_per_epoch"] == 6  # 180 training images / batch 32
    assert report["parameters"] > 0 and report["activation_bytes_per_batch"] > 0
    rates = [point["learning_rate"] for point in report["learning_rates"]]
    assert rates[0] == pytest.approx(0.01) and rates[-1] < rates[0]
    assert "Total params" in err
    assert not (project / "runs").exists()


def test_dry_run_says_what_the_time_budget_holds(project: Path) -> None:
    code, out, err = invoke(
        "train", "--dry-run", "--json", "--epochs", "100", "--time-budget", "2h"
    )
    assert code == 0, err
    timing = json.loads(out)["timing"]
    expected = min(100, int(7200 // timing["epoch_seconds"]))
    assert timing["budget_seconds"] == 7200 and timing["epochs_in_budget"] == expected
    shown = " ".join(err.replace("│", " ").split())  # the table may wrap the cell anywhere
    assert f"time budget holds ≈ {expected} of them" in shown


def test_dry_run_refuses_the_monitor_train_refuses(project: Path) -> None:
    # the project monitors val_accuracy, which an autoencoder never logs
    autoencoder = "model={family: autoencoder, architecture: conv, filters: [4]}"
    dry_code, _, dry_err = invoke("train", "--dry-run", "--set", autoencoder)
    code, _, err = invoke("train", "--set", autoencoder)
    assert dry_code == code == 2
    for text in (" ".join(dry_err.split()), " ".join(err.split())):
        assert "'val_accuracy'" in text and "reconstruction task" in text
    assert not (project / "runs").exists()


def test_divergence_exits_1_and_says_where(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # raw 0-255 pixels and a huge step: the logits overflow within a few batches
    write_recipe(
        idx_folder,
        data={"source": str(idx_folder), "scaling": "none"},
        model={"dense": [64, 64]},
        train={"epochs": 3, "optimizer": {"name": "sgd", "learning_rate": 10.0}},
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("prepare")
    assert code == 0, err
    code, _, err = invoke("train")
    assert code == 1, err
    assert "diverged at epoch 1, batch" in err and "clipnorm" in err
    (run,) = runs(tmp_path)
    assert json.loads((run / "run.json").read_text())["status"] == "diverged"
    assert not (run / "model.keras").exists()
    # epoch 1 diverged: no checkpoint of it, nothing to resume, no best to point at
    assert not list((run / "checkpoints").iterdir())
    assert "best epoch so far" not in err


def test_a_diverged_run_is_resumed_only_when_named(project: Path) -> None:
    assert invoke("train")[0] == 0
    (run,) = runs(project)
    simulate_kill_after_first_epoch(run)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "diverged"}))
    code, _, err = invoke("train", "--resume")
    assert code == 2 and "1 diverged run(s)" in err and "--run" in err
    assert invoke("train", "--resume", "--run", str(run))[0] == 0


def test_unknown_monitor_for_the_task(project: Path) -> None:
    code, _, err = invoke("train", "--set", "train.early_stopping.monitor=val_rmse")
    assert code == 2 and "val_accuracy" in err


def test_autoencoder_trains_from_the_shell(project: Path) -> None:
    code, out, err = invoke(
        "train",
        "--json",
        "--set",
        "model={family: autoencoder, architecture: conv, filters: [4]}",
        "--set",
        "train.early_stopping.monitor=val_loss",  # an autoencoder logs no accuracy
    )
    assert code == 0, err
    rows = history(runs(project)[0])
    assert set(rows[0]) >= {"loss", "val_loss"} and "accuracy" not in rows[0]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


_TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


@pytest.mark.parametrize(
    ("tf_config", "expected"),
    [
        ('{"cluster": {"worker": ["127.0.0.1:1"]}', "is not valid JSON"),
        (json.dumps({"cluster": _TWO_WORKERS}), 'a "task" mapping'),
        (
            json.dumps({"cluster": _TWO_WORKERS, "task": {"type": "worker", "index": 2}}),
            "not a member of its cluster",
        ),
        (
            json.dumps(
                {"cluster": {**_TWO_WORKERS, "ps": ["127.0.0.1:3"]}, "task": {"type": "worker"}}
            ),
            "has 'ps' jobs",
        ),
    ],
)
def test_a_malformed_tf_config_is_refused_clearly(
    project: Path, monkeypatch: pytest.MonkeyPatch, tf_config: str, expected: str
) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config)
    code, _, err = invoke("train")
    assert code == 2 and expected in " ".join(err.split()) and "Traceback" not in err
    assert not (project / "runs").exists()


def test_a_gan_is_refused_across_machines(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": _TWO_WORKERS, "task": {"type": "worker", "index": 1}})
    )
    code, _, err = invoke(
        "train",
        "--set",
        "model={family: gan, latent_dim: 8, filters: [8]}",
        "--set",
        "train.early_stopping.monitor=val_g_loss",
    )
    assert code == 2 and "gan family trains on one machine only" in " ".join(err.split())
    assert not (project / "runs").exists()


@pytest.mark.slow  # a MobileNetV2, even at 32×32, takes a while on 2 cores
def test_transfer_freezes_then_fine_tunes_at_a_lower_rate(project: Path) -> None:
    model = "{family: transfer, image_size: 32, freeze_epochs: 1, fine_tune_learning_rate: 0.1}"
    code, _, err = invoke("train", "--epochs", "2", "--set", f"model={model}")
    assert code == 0, err
    rows = history(runs(project)[0])
    assert [row["epoch"] for row in rows] == ["0", "1"]  # one history across both phases
    frozen_rate, fine_rate = (float(row["learning_rate"]) for row in rows)
    assert frozen_rate == pytest.approx(0.01) and fine_rate == pytest.approx(0.001)


def test_gan_trains_from_the_shell_and_saves_sample_grids(project: Path) -> None:
    code, _, err = invoke(
        "train",
        "--epochs",
        "2",
        "--set",
        "model={family: gan, latent_dim: 8, filters: [8, 4], samples: 4}",
        "--set",
        "train.early_stopping.monitor=val_g_loss",
    )
    assert code == 0, err
    (run,) = runs(project)
    rows = history(run)
    assert {"d_loss", "g_loss", "val_d_loss", "val_g_loss"} <= set(rows[0])
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch-0001.png",
        "epoch-0002.png",
    ]
    assert (run / "model.keras").is_file()


def test_a_refused_setting_leaves_no_run_folder(project: Path) -> None:
    code, _, err = invoke("train", "--set", "train.loss.name=mse")  # a numeric loss for classes
    assert code == 2 and "train.loss.name" in err
    assert not (project / "runs").exists()


def test_run_keeps_its_manifest_and_readable_files(project: Path) -> None:
    assert invoke("train")[0] == 0
    (run,) = runs(project)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest == json.loads((project / "data" / "tiny" / "manifest.json").read_text())
    assert (run / "run.json").stat().st_mode & 0o044  # group/others may read results


def write_table_project(folder: Path, **train: object) -> None:
    """A 300-row table whose two classes stand 4:1, oversampled, and an MLP recipe for it."""
    rng = np.random.default_rng(0)
    labels = ["a"] * 240 + ["b"] * 60
    rows = zip(rng.normal(size=300), rng.normal(size=300), labels, strict=True)
    lines = ["x1,x2,label", *(f"{a:.4f},{b:.4f},{c}" for a, b, c in rows)]
    (folder / "t.csv").write_text("\n".join(lines) + "\n")
    recipe = {
        "name": "tiny",
        "seed": 7,
        "data": {
            "source": "t.csv",
            "target": "label",
            "sampling": "oversample",
            "split": {"validation": 0.2, "test": 0.2},
        },
        "model": {"family": "mlp", "units": [8], "dropout": 0.0},
        "train": {"batch_size": 32, "optimizer": {"learning_rate": 0.01}, **train},
    }
    (folder / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def test_oversampling_sizes_the_schedule_progress_and_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an epoch runs the balanced split (2 × 144 rows), not the stored one (180)
    write_table_project(tmp_path, epochs=2, lr_schedule={"name": "cosine"})
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("prepare")
    assert code == 0, err
    dataset = open_store(tmp_path / "data" / "tiny")
    steps = math.ceil(len(dataset.load_split("train")[1]) / 32)
    assert steps > math.ceil(len(dataset.load_split("train", resample=False)[1]) / 32)

    code, out, err = invoke("train", "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["steps_per_epoch"] == steps

    code, _, err = invoke("train")
    assert code == 0, err
    # cosine over the batches an epoch really runs is exactly halfway down after epoch 1 of 2
    rates = [float(row["learning_rate"]) for row in history(runs(tmp_path)[0])]
    assert rates[0] == pytest.approx(0.005, rel=1e-3)
