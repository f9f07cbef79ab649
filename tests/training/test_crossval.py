"""K-fold cross-validation (training/crossval.py): a fold's view of the prepared data, the fold
method each kind of data gets, and the model averaging the folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from dltrain.backend import keras
from dltrain.data.folds import FoldMethod, assign_folds, pool_splits
from dltrain.data.prepare import prepare
from dltrain.data.store import PreparedDataset
from dltrain.models.saving import load_model
from dltrain.recipe.load import load_recipe_dict
from dltrain.recipe.schema import Recipe
from dltrain.training.crossval import (
    FoldData,
    average_models,
    fold_request,
    held_out_metrics,
    summarize,
)


def _recipe(tmp_path: Path, source: Path, data: dict[str, Any] | None = None) -> Recipe:
    sections = {
        "name": "cv",
        "seed": 4,
        "data": {"source": str(source), "target": "label", **(data or {})},
        "model": {"family": "mlp", "units": [4]},
        "train": {"epochs": 1, "folds": 3},
    }
    return load_recipe_dict(sections, tmp_path / "dltrain.yaml").recipe


def _table(tmp_path: Path, rows: int = 150) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(50, 10, rows).round(2),
            "clinic": rng.choice([f"c{i}" for i in range(12)], rows),
            "label": rng.choice(["no", "yes"], rows),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    return tmp_path / "t.csv"


def _prepared(recipe: Recipe, folder: Path) -> PreparedDataset:
    return prepare(recipe.data, recipe.seed, folder).dataset


def test_a_fold_trains_on_its_rows_validates_on_the_rest_and_never_sees_the_test_split(
    tmp_path: Path,
) -> None:
    recipe = _recipe(tmp_path, _table(tmp_path))
    dataset = _prepared(recipe, tmp_path / "data")
    pool = pool_splits(dataset.load_split("train"), dataset.load_split("validation"))
    method, request, notes = fold_request(recipe, dataset.manifest, dataset.manifest.task, pool)
    assert method is FoldMethod.STRATIFIED and not notes
    assert request.num_folds == 3 and request.seed == 4
    test_x, test_y = dataset.load_split("test")
    folds = assign_folds(len(pool[1]), request)
    seen_held_out = []
    for fold in folds:
        view = FoldData(
            folder=dataset.folder,
            manifest=dataset.manifest,
            pool_x=pool[0],
            pool_y=pool[1],
            fold=fold,
        )
        train_x, train_y = view.load_split("train")
        held_x, held_y = view.load_split("validation")
        assert isinstance(train_x, dict) and isinstance(held_x, dict)
        assert view.num_examples("train") == len(train_y) == len(fold.train)
        assert view.num_examples("validation") == len(held_y) == len(fold.held_out)
        np.testing.assert_array_equal(held_x["size"], pool[0]["size"][fold.held_out])
        np.testing.assert_array_equal(train_y, pool[1][fold.train])
        seen_held_out.extend(held_x["size"].tolist())
        fold_test_x, fold_test_y = view.load_split("test")
        assert isinstance(fold_test_x, dict) and isinstance(test_x, dict)
        np.testing.assert_array_equal(fold_test_x["size"], test_x["size"])
        np.testing.assert_array_equal(fold_test_y, test_y)
        assert view.num_examples("test") == len(test_y)
        assert not set(held_x["size"].tolist()) & set(test_x["size"].tolist())
    # the folds hold out exactly the training and validation rows, each once
    assert sorted(seen_held_out) == sorted(pool[0]["size"].tolist())
    assert len(pool[1]) + len(test_y) == 150


def test_a_fold_resamples_its_own_training_rows_as_the_recipe_asks(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, _table(tmp_path), {"sampling": "oversample"})
    dataset = _prepared(recipe, tmp_path / "data")
    pool = pool_splits(
        dataset.load_split("train", resample=False), dataset.load_split("validation")
    )
    _, request, _ = fold_request(recipe, dataset.manifest, dataset.manifest.task, pool)
    fold = assign_folds(len(pool[1]), request)[0]
    view = FoldData(
        folder=dataset.folder, manifest=dataset.manifest, pool_x=pool[0], pool_y=pool[1], fold=fold
    )
    _, y = view.load_split("train")
    counts = np.bincount(y)
    assert counts[0] == counts[1] == np.bincount(pool[1][fold.train]).max()
    assert view.num_examples("train") == len(y)
    assert view.num_examples("train", resample=False) == len(fold.train)
    _, held = view.load_split("validation")
    assert len(held) == len(fold.held_out)  # the held-out rows are never resampled


def test_group_splits_keep_each_group_in_one_fold(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, _table(tmp_path), {"split": {"method": "group", "column": "clinic"}})
    dataset = _prepared(recipe, tmp_path / "data")
    pool = pool_splits(dataset.load_split("train"), dataset.load_split("validation"))
    method, request, notes = fold_request(recipe, dataset.manifest, dataset.manifest.task, pool)
    assert method is FoldMethod.STRATIFIED_GROUP and not notes
    assert request.groups is not None
    for fold in assign_folds(len(pool[1]), request):
        assert not set(request.groups[fold.train]) & set(request.groups[fold.held_out])


def test_a_series_is_cut_in_time_order_with_a_gap_of_the_horizon(tmp_path: Path) -> None:
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "temp": np.sin(np.arange(120) / 5)})
    frame.to_csv(tmp_path / "s.csv", index=False)
    recipe = _recipe(
        tmp_path,
        tmp_path / "s.csv",
        {"target": "temp", "series": {"lookback": 4, "horizon": 3, "time_column": "day"}},
    )
    dataset = _prepared(recipe, tmp_path / "data")
    pool = pool_splits(dataset.load_split("train"), dataset.load_split("validation"))
    method, request, _ = fold_request(recipe, dataset.manifest, dataset.manifest.task, pool)
    assert method is FoldMethod.TIME and request.gap == 2 and request.labels is None
    for fold in assign_folds(len(pool[1]), request):
        assert fold.train.max() + request.gap < fold.held_out.min()


def _tiny_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = {
        "a b": keras.Input(shape=(), dtype="float32", name="a_b"),
        "c": keras.Input(shape=(), dtype="float32", name="c"),
    }
    stacked = keras.ops.stack([inputs["a b"], inputs["c"]], axis=-1)
    hidden = keras.layers.Dense(4, activation="relu")(stacked)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))


def test_the_averaged_model_answers_the_mean_of_the_folds_and_survives_saving(
    tmp_path: Path,
) -> None:
    models = [_tiny_model(seed) for seed in (1, 2, 3)]
    rows = {"a b": np.linspace(-1, 1, 6).astype("float32"), "c": np.ones(6, "float32")}
    each = [np.asarray(m.predict(rows, verbose=0)) for m in models]
    assert not np.allclose(each[0], each[1])
    averaged = average_models(models)
    np.testing.assert_allclose(averaged.predict(rows, verbose=0), np.mean(each, axis=0), rtol=1e-5)
    averaged.save(tmp_path / "model.keras")
    reloaded = load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_allclose(reloaded.predict(rows, verbose=0), np.mean(each, axis=0), rtol=1e-5)


def test_held_out_metrics_are_the_kept_epochs_and_summarized_as_mean_and_sd() -> None:
    history = [
        {"epoch": 0, "loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.5},
        {"epoch": 1, "loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7},
    ]
    assert held_out_metrics(history, 1) == {"loss": 0.8, "accuracy": 0.5}
    mean, sd = summarize([{"loss": 0.2, "mae": 1.0}, {"loss": 0.4, "mae": 3.0}, {"loss": 0.6}])
    assert mean == pytest.approx({"loss": 0.4})  # only what every fold has
    assert sd == pytest.approx({"loss": 0.2})


def test_each_folds_warnings_reach_the_cross_validation_named_by_fold(tmp_path: Path) -> None:
    from dltrain.data.folds import FoldMethod
    from dltrain.training.crossval import CrossValidation, FoldResult

    def fold(number: int, *warnings: str) -> FoldResult:
        return FoldResult(number, tmp_path, 8, 2, 3, 3, {"loss": 0.1}, 1.0, warnings)

    result = CrossValidation(
        tmp_path,
        FoldMethod.STRATIFIED,
        [fold(1), fold(2, "the best epoch was the last")],
        {"loss": 0.1},
        {"loss": 0.0},
        2.0,
    )
    assert result.warnings == ["fold 2: the best epoch was the last"]
    assert result.to_json()["warnings"] == result.warnings


def test_a_family_with_no_target_to_hold_out_is_refused_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import invoke

    source = _table(tmp_path)
    recipe = {
        "name": "ae",
        "data": {"source": str(source), "target": "label"},
        "model": {"family": "autoencoder", "units": [4], "latent_dim": 2},
        "train": {"epochs": 1},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    code, _, err = invoke("train", "--folds", "3")
    assert code == 2
    assert "autoencoder" in err and "train.folds" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "ae").exists() or not any((tmp_path / "runs" / "ae").iterdir())
