"""dltrain init: a starter recipe from a dataset, what it inferred, and no overwriting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.recipe.schema import TrainSpec

runner = CliRunner()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a small sales table: ids, a long-tailed number, a category."""
    rng = np.random.default_rng(0)
    num = 300
    spend = np.round(rng.lognormal(3, 1.5, num), 2)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1, num + 1),
            "visits": rng.integers(1, 30, num),
            "spend": spend,
            "channel": rng.choice(["web", "shop", "phone"], num, p=[0.6, 0.3, 0.1]),
            "churned": np.where(rng.random(num) < 0.15, "yes", "no"),
        }
    )
    frame.to_csv(tmp_path / "sales.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_a_recipe_that_says_what_it_inferred(shop: Path) -> None:
    result = runner.invoke(app, ["init", "sales.csv", "--target", "churned", "--json"])
    assert result.exit_code == 0, result.stderr
    written = (shop / "dltrain.yaml").read_text()
    recipe = yaml.safe_load(written)
    data = recipe["data"]
    assert data["source"] == "sales.csv" and data["target"] == "churned"
    assert data["task"] == "binary"
    assert data["columns"]["customer_id"] == {"type": "identifier"}
    assert data["columns"]["channel"] == {"type": "categorical"}
    assert data["columns"]["spend"] == {"type": "numeric", "scaling": "log"}
    assert recipe["model"]["family"] == "mlp"
    if "class_weight" in TrainSpec.model_fields:
        assert recipe["train"]["class_weight"] == "balanced"  # about 15% churn
        assert "balanced class weights" in written
    assert "# Starter recipe written by `dltrain init`" in written
    assert "long-tailed" in written
    assert "task binary" in result.stderr and "Wrote" in result.stderr
    assert json.loads(result.stdout)["content"] == recipe


def test_init_refuses_to_overwrite_without_force(shop: Path) -> None:
    (shop / "dltrain.yaml").write_text("name: mine\n")
    result = runner.invoke(app, ["init", "sales.csv", "--target", "churned"])
    assert result.exit_code == 2 and "--force" in result.stderr
    assert (shop / "dltrain.yaml").read_text() == "name: mine\n"
    assert runner.invoke(app, ["init", "sales.csv", "-t", "churned", "--force"]).exit_code == 0
    assert yaml.safe_load((shop / "dltrain.yaml").read_text())["name"] == "sales"


def test_init_needs_a_target_for_a_table(shop: Path) -> None:
    result = runner.invoke(app, ["init", "sales.csv"])
    assert result.exit_code == 2
    assert "--target" in result.stderr and "churned" in result.stderr
    assert not (shop / "dltrain.yaml").exists()
    result = runner.invoke(app, ["init", "sales.csv", "--target", "chruned"])
    assert result.exit_code == 2 and "Did you mean 'churned'?" in result.stderr


def test_init_a_series_and_an_image_folder(shop: Path) -> None:
    days = pd.date_range("2020-01-01", periods=200, freq="D")
    series = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "load": np.sin(np.arange(200))})
    series.to_csv(shop / "load.csv", index=False)
    assert runner.invoke(app, ["init", "load.csv", "-t", "load", "-o", "load.yaml"]).exit_code == 0
    recipe = yaml.safe_load((shop / "load.yaml").read_text())
    assert recipe["data"]["task"] == "forecasting"
    assert recipe["data"]["series"]["time_column"] == "day"
    assert recipe["model"]["family"] == "rnn"

    for label in ("cat", "dog"):
        (shop / "pets" / label).mkdir(parents=True)
        Image.new("L", (300, 200)).save(shop / "pets" / label / "a.png")
    result = runner.invoke(app, ["init", "pets", "-o", "pets.yaml"])
    assert result.exit_code == 0, result.stderr
    recipe = yaml.safe_load((shop / "pets.yaml").read_text())
    assert recipe["data"]["format"] == "images" and recipe["model"]["family"] == "cnn"
    assert recipe["data"]["image"] == {"size": [128, 128], "channels": 1}


@pytest.mark.slow
def test_from_nothing_to_a_trained_model(shop: Path) -> None:
    """dltrain init data.csv --target y && dltrain prepare && dltrain train && dltrain evaluate"""
    assert runner.invoke(app, ["init", "sales.csv", "--target", "churned"]).exit_code == 0
    assert runner.invoke(app, ["prepare"]).exit_code == 0
    trained = runner.invoke(app, ["train", "--epochs", "1"])
    assert trained.exit_code == 0, trained.stderr
    evaluated = runner.invoke(app, ["evaluate", "--json"])
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["num_examples"] == 30


def test_init_adds_no_augmentation_to_an_image_folder(shop: Path) -> None:
    for label in ("three", "eight"):
        (shop / "digits" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), color=i * 60).save(shop / "digits" / label / f"{i}.png")
    result = runner.invoke(app, ["init", "digits", "-o", "digits.yaml"])
    assert result.exit_code == 0, result.stderr
    written = (shop / "digits.yaml").read_text()
    recipe = yaml.safe_load(written)
    assert "augmentation" not in recipe["model"]
    assert "no augmentation" in written and "model.augmentation" in result.stderr
    # 8 images: a few steps an epoch, so many epochs and a patient early stopping
    assert recipe["train"]["epochs"] == 100
    assert recipe["train"]["early_stopping"]["patience"] == 15


def test_init_image_arrays_says_their_pixel_range(shop: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(50, 8, 8)).astype(np.uint8)  # digits stored as 0-16
    np.savez(shop / "digits.npz", x=x, y=np.arange(50) % 2)
    result = runner.invoke(app, ["init", "digits.npz", "-o", "digits.yaml", "--json"])
    assert result.exit_code == 0, result.stderr
    recipe = json.loads(result.stdout)["content"]
    assert recipe["model"]["family"] == "cnn" and "augmentation" not in recipe["model"]
    pixels = [r for r in json.loads(result.stdout)["inferred"] if r.startswith("pixels")]
    assert pixels and "0 to 16" in pixels[0] and "data.pixel_range" in pixels[0]


@pytest.mark.parametrize(
    ("examples", "batch_size", "epochs", "patience"),
    [(300, 128, 100, 15), (20_000, 128, 16, 5), (1_000_000, 256, 10, 5)],
)
def test_epochs_and_patience_scale_with_the_data(
    examples: int, batch_size: int, epochs: int, patience: int
) -> None:
    from dltrain.data.starter import TARGET_STEPS, training_defaults

    reasons: list[str] = []
    train = training_defaults(reasons, examples, batch_size)
    assert (train["epochs"], train["early_stopping"]["patience"]) == (epochs, patience)
    steps = -(-int(examples * 0.8) // batch_size)
    if 10 < TARGET_STEPS / steps < 100:  # within the bounds: about TARGET_STEPS steps in all
        assert abs(train["epochs"] * steps - TARGET_STEPS) <= steps
    assert f"{epochs} epochs" in reasons[0] and f"after {patience} epochs" in reasons[0]


@pytest.mark.parametrize(
    ("rows", "batch_size"), [(150, 32), (4_999, 32), (20_000, 128), (10**6, 256)]
)
def test_tables_train_in_batches_by_their_size(rows: int, batch_size: int) -> None:
    from dltrain.data.starter import table_batch_size, training_defaults

    assert table_batch_size(rows) == batch_size
    # small tables reach many more steps than batches of 128 would (iris: 100 in all)
    small = training_defaults([], 150, table_batch_size(150))
    assert small["epochs"] * -(-120 // small["batch_size"]) >= 4 * small["epochs"]


def test_a_series_with_unique_times_has_no_duplicate_rows(shop: Path) -> None:
    weeks = pd.date_range("2000-01-02", periods=300, freq="W")
    level = np.round(np.linspace(360, 370, 300), 0)  # few distinct values: many repeats
    pd.DataFrame({"week": weeks.strftime("%Y-%m-%d"), "co2": level}).to_csv(
        shop / "co2.csv", index=False
    )
    result = runner.invoke(app, ["init", "co2.csv", "-t", "co2", "-o", "co2.yaml", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "duplicate" not in result.stderr

    table = pd.DataFrame({"a": [1, 2, 3] * 20, "b": ["x", "y", "z"] * 20, "y": [0, 1, 0] * 20})
    table.to_csv(shop / "plain.csv", index=False)
    result = runner.invoke(app, ["init", "plain.csv", "-t", "y", "-o", "plain.yaml"])
    assert result.exit_code == 0, result.stderr
    assert "57 duplicate row(s)" in result.stderr


def test_init_scales_the_training_of_a_text_folder(shop: Path) -> None:
    for label in ("spam", "ham"):
        (shop / "mail" / label).mkdir(parents=True)
        for i in range(10):
            (shop / "mail" / label / f"{i}.txt").write_text(f"{label} message number {i}")
    result = runner.invoke(app, ["init", "mail", "-o", "mail.yaml", "--json"])
    assert result.exit_code == 0, result.stderr
    train = json.loads(result.stdout)["content"]["train"]
    assert train["epochs"] == 100 and train["early_stopping"]["patience"] == 15
    assert "about 16 training examples" in result.stderr


def test_many_repeated_rows_are_kept_as_the_datas_nature_and_few_are_dropped(shop: Path) -> None:
    rng = np.random.default_rng(1)
    # a survey: three coarse answers and a rare flag, so respondents often answer alike
    survey = pd.DataFrame(
        {
            "age_band": rng.integers(1, 4, 400),
            "smoker": (rng.random(400) < 0.03).astype(int),
            "visits": rng.integers(0, 3, 400),
        }
    )
    survey.to_csv(shop / "survey.csv", index=False)
    result = runner.invoke(app, ["init", "survey.csv", "-t", "visits", "-o", "survey.yaml"])
    assert result.exit_code == 0, result.stderr
    recipe = yaml.safe_load((shop / "survey.yaml").read_text())
    assert recipe["data"]["clean"] == {"duplicates": "keep"}
    assert "too many for accidental copies" in " ".join(result.stderr.split())
    assert recipe["data"]["columns"]["smoker"] == {"type": "numeric"}  # a 0/1 flag: no log

    # the sales table has no repeats: prepare's default (drop) stands
    result = runner.invoke(app, ["init", "sales.csv", "-t", "churned", "-o", "sales.yaml"])
    assert result.exit_code == 0, result.stderr
    assert "clean" not in yaml.safe_load((shop / "sales.yaml").read_text())["data"]


def test_init_embeds_a_category_column_too_wide_for_one_hot(shop: Path) -> None:
    frame = pd.read_csv(shop / "sales.csv")
    frame["city"] = [f"town{i % 80:02d}" for i in range(len(frame))]  # 80 values, each ~4 times
    frame.to_csv(shop / "sales.csv", index=False)
    result = runner.invoke(app, ["init", "sales.csv", "--target", "churned"])
    assert result.exit_code == 0, result.stderr
    written = (shop / "dltrain.yaml").read_text()
    columns = yaml.safe_load(written)["data"]["columns"]
    assert columns["city"] == {"type": "categorical", "encoding": "embedding"}
    assert columns["channel"] == {"type": "categorical"}  # 3 values: one-hot (auto)
    assert "city: 80 distinct values, so an embedding" in written
