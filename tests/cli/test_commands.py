"""The real CLI, end to end on tiny data: exit codes, stdout JSON, run folders, error paragraphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import RecipeWriter, invoke


@pytest.fixture
def project(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A working directory holding dltrain.yaml over a tiny IDX dataset."""
    write_recipe(idx_folder)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def only_run(project: Path) -> Path:
    runs = sorted((project / "runs" / "tiny").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_prepare_train_evaluate_with_no_paths(project: Path) -> None:
    code, out, err = invoke("prepare")
    assert code == 0, err
    assert (project / "data" / "tiny" / "manifest.json").is_file()

    code, out, err = invoke("train", "--json")
    assert code == 0, err
    trained = json.loads(out)
    run = only_run(project)
    assert trained["run"] == str(run) and trained["epochs_run"] == 1
    for name in ("recipe.yaml", "model.keras", "history.csv", "run.json", "model_summary.txt"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["seed"] == 7
    assert info["versions"]["tensorflow"].startswith("2.") and info["device"]
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "epoch_seconds",
    } <= set(header)
    assert "epoch 1/1" in err  # one plain line per epoch when not on a terminal

    code, out, err = invoke("evaluate", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["run"] == str(run) and document["split"] == "test"
    assert document["num_examples"] == 60
    assert 0.0 <= document["metrics"]["accuracy"] <= 1.0
    assert sum(map(sum, document["confusion_matrix"]["counts"])) == 60
    assert json.loads((run / "metrics.json").read_text()) == document
    assert "Confusion matrix" in err


def test_flags_and_set_override_the_recipe(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    code, _, err = invoke(
        "train",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--lr-schedule",
        "cosine",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--seed",
        "7",
        "--set",
        "model.dense=[4]",
    )
    assert code == 0, err
    resolved = yaml.safe_load((only_run(project) / "recipe.yaml").read_text())
    assert resolved["train"]["optimizer"]["name"] == "sgd"
    assert resolved["train"]["optimizer"]["learning_rate"] == 0.05
    assert resolved["train"]["lr_schedule"]["name"] == "cosine"
    assert (resolved["train"]["epochs"], resolved["train"]["batch_size"]) == (2, 16)
    assert resolved["model"]["dense"] == [4]
    assert len((only_run(project) / "history.csv").read_text().splitlines()) == 3


def test_print_recipe_prints_and_trains_nothing(project: Path) -> None:
    code, out, _ = invoke(
        "train", "--print-recipe", "--epochs", "5", "--set", "train.shuffle=false"
    )
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["train"]["epochs"] == 5 and printed["train"]["shuffle"] is False
    assert not (project / "runs").exists()


def test_evaluate_takes_the_latest_run_unless_named(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    assert invoke("train")[0] == 0
    assert invoke("train")[0] == 0
    first, latest = sorted((project / "runs" / "tiny").iterdir())
    assert json.loads(invoke("evaluate", "--json")[1])["run"] == str(latest)
    assert json.loads(invoke("evaluate", "--json", "--run", str(first))[1])["run"] == str(first)
    code, out, _ = invoke("evaluate", "--json", "--split", "validation")
    assert code == 0 and json.loads(out)["split"] == "validation"
    assert (latest / "metrics-validation.json").is_file()


def test_second_prepare_is_a_no_op(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    code, _, err = invoke("prepare")
    assert code == 0 and "Up to date" in err


def assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_missing_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_clean_error(*invoke("prepare")[::2], "recipe error", "dltrain.yaml", "--recipe")
    assert_clean_error(*invoke("train", "-r", "nope.yaml")[::2], "nope.yaml does not exist")


def test_unknown_key(project: Path) -> None:
    recipe = project / "dltrain.yaml"
    recipe.write_text(recipe.read_text().replace("epochs:", "epoch:"))
    code, _, err = invoke("train")
    assert_clean_error(code, err, "`train.epoch`", "Did you mean `train.epochs`?", str(recipe))


def test_train_before_prepare(project: Path) -> None:
    assert_clean_error(*invoke("train")[::2], "No prepared dataset", "dltrain prepare")
    assert not (project / "runs").exists()


def test_train_on_data_prepared_differently(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    code, _, err = invoke("train", "--set", "data.scaling=standard")
    assert_clean_error(code, err, "different data section")


def test_evaluate_without_runs_or_with_a_missing_run(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    assert_clean_error(*invoke("evaluate")[::2], "No finished run", "dltrain train")
    assert_clean_error(*invoke("evaluate", "--run", "runs/tiny/nope")[::2], "does not exist")


def test_corrupt_gzip_leaves_nothing_behind(project: Path, idx_folder: Path) -> None:
    target = idx_folder / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:100])
    assert_clean_error(*invoke("prepare")[::2], "t10k-images-idx3-ubyte.gz", "not a readable gzip")
    assert not (project / "data").exists()


def test_bad_set_syntax_and_bad_enum_flag(project: Path) -> None:
    assert_clean_error(*invoke("train", "--set", "train.epochs")[::2], "dotted.key=value")
    code, _, err = invoke("train", "--optimizer", "adamm")
    assert code == 2 and "Traceback" not in err
