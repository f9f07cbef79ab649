"""`data.target_transform: log`: fitted at prepare, learnt on the log scale, predicted in units."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from dltrain.backend import keras
from dltrain.data.prepare import data_spec_digest, prepare
from dltrain.errors import DataError
from dltrain.manifest import Manifest, NumericTarget
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.models.saving import load_model
from dltrain.recipe.data import DataSpec, TargetTransform
from dltrain.recipe.models import MlpSpec
from dltrain.recipe.schema import LossSpec
from dltrain.tasks import Task
from dltrain.training.losses import TransformedTargetLoss, make_loss, on_target_scale
from tests.cli.eval_projects import train_and_predict_training_rows


def homes(num: int = 160, seed: int = 0) -> pd.DataFrame:
    """Prices that grow by a factor per unit of `size`: log(price) is linear in it."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0, 4, num)
    noise = rng.normal(0, 0.05, num)
    return pd.DataFrame({"size": size, "price": np.exp(10 + 0.8 * size + noise)})


def log_spec(source: Path, **overrides: object) -> DataSpec:
    data = {"source": source, "target": "price", "target_transform": "log", **overrides}
    return DataSpec.model_validate(data)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    tmp_path = tmp_path_factory.mktemp("homes")
    homes().to_csv(tmp_path / "homes.csv", index=False)
    return prepare(log_spec(tmp_path / "homes.csv"), 1, tmp_path / "data").dataset.manifest


def sizes(values: list[float]) -> dict[str, np.ndarray]:
    return {"size": np.asarray(values, dtype="float32")}


def test_prepare_fits_the_log_of_the_training_targets(tmp_path: Path) -> None:
    homes().to_csv(tmp_path / "homes.csv", index=False)
    spec = log_spec(tmp_path / "homes.csv")
    dataset = prepare(spec, 1, tmp_path / "data").dataset
    target = dataset.manifest.target
    assert isinstance(target, NumericTarget) and target.transform is not None
    _, y = dataset.load_split("train")  # the stored targets stay prices
    logs = np.log(y.astype(np.float64))
    assert target.transform.mean[0] == pytest.approx(logs.mean(), rel=1e-6)
    assert target.transform.std[0] == pytest.approx(logs.std(), rel=1e-5)
    assert target.mean[0] == pytest.approx(y.mean(), rel=1e-5)
    # the transform shapes the prepared data's identity: changing it prepares again
    plain = spec.model_copy(update={"target_transform": TargetTransform.NONE})
    assert data_spec_digest(spec, 1) != data_spec_digest(plain, 1)


def test_the_model_learns_logs_and_predicts_in_the_target_units(
    manifest: Manifest, tmp_path: Path
) -> None:
    target = manifest.target
    assert isinstance(target, NumericTarget) and target.transform is not None
    model = build_model(MlpSpec(units=[4], dropout=0.0), ModelIO(manifest))
    standardized = model.get_layer("standardized")
    kernel, _ = standardized.get_weights()
    standardized.set_weights([np.zeros_like(kernel), np.array([1.0], dtype="float32")])
    # one standard deviation above the mean log, turned back into a price
    expected = np.exp(target.transform.mean[0] + target.transform.std[0])
    prediction = np.asarray(model.predict(sizes([0.5, 3.0]), verbose=0))
    np.testing.assert_allclose(prediction, [[expected]] * 2, rtol=1e-5)
    model.save(tmp_path / "m.keras")  # the inverse is part of the saved model
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(sizes([0.5, 3.0]), verbose=0), prediction)


def test_the_loss_compares_logs_and_training_fits_the_prices(manifest: Manifest) -> None:
    loss = on_target_scale(make_loss(LossSpec(), Task.REGRESSION), Task.REGRESSION, manifest)
    assert isinstance(loss, TransformedTargetLoss)
    y_true = np.array([100.0, 1000.0], dtype="float32")
    y_pred = np.array([[110.0], [1100.0]], dtype="float32")
    # a 10% miss weighs the same on a cheap row as on a dear one
    assert float(loss(y_true, y_pred)) == pytest.approx(np.log(1.1) ** 2, rel=1e-4)
    # ensembles give one row of predictions per tower in training: each tower's own loss
    towers = np.array([[110.0, 1000.0], [100.0, 1100.0]], dtype="float32")
    assert float(loss(y_true, towers)) == pytest.approx(np.log(1.1) ** 2 / 2, rel=1e-4)
    # other tasks keep the loss they asked for
    plain = make_loss(LossSpec(), Task.REGRESSION)
    assert on_target_scale(plain, Task.RECONSTRUCTION, manifest) is plain

    keras.utils.set_random_seed(0)
    model = build_model(MlpSpec(units=[16], dropout=0.0), ModelIO(manifest))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=loss)
    frame = homes(seed=3)
    x, y = sizes(frame["size"].tolist()), frame["price"].to_numpy("float32")
    history = model.fit(x, y, epochs=40, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.05  # the squared error of logs: a few percent, not dollars squared
    relative = np.abs(model.predict(x, verbose=0)[:, 0] / y - 1)
    assert np.median(relative) < 0.15


@pytest.mark.filterwarnings("ignore:Skipping variable loading")  # an optimizer never stepped
def test_the_wrapped_loss_survives_saving(manifest: Manifest, tmp_path: Path) -> None:
    # (MAE: Keras saves no Huber delta, which is why dltrain compiles from the recipe on resume)
    mae = make_loss(LossSpec(name="mae"), Task.REGRESSION)
    loss = on_target_scale(mae, Task.REGRESSION, manifest)
    model = build_model(MlpSpec(units=[4]), ModelIO(manifest))
    model.compile(optimizer="adam", loss=loss)
    model.save(tmp_path / "m.keras")
    restored = load_model(tmp_path / "m.keras").loss
    assert isinstance(restored, TransformedTargetLoss)
    assert isinstance(restored.loss, keras.losses.MeanAbsoluteError)
    y_true, y_pred = np.array([100.0]), np.array([[200.0]])
    assert float(restored(y_true, y_pred)) == pytest.approx(np.log(2.0), rel=1e-5)


def test_targets_the_log_cannot_take_are_refused(tmp_path: Path) -> None:
    frame = homes(40)
    frame.loc[7, "price"] = 0.0
    frame.loc[9, "price"] = -3.0
    frame.to_csv(tmp_path / "zero.csv", index=False)
    with pytest.raises(DataError, match=r"'price' to be > 0, but 2 row\(s\).*lowest is -3"):
        prepare(log_spec(tmp_path / "zero.csv"), 1, tmp_path / "a")
    classes = homes(40).assign(price=np.tile([1.0, 2.0], 20))
    classes.to_csv(tmp_path / "classes.csv", index=False)
    with pytest.raises(DataError, match="read as binary. Set `data.task: regression`"):
        prepare(log_spec(tmp_path / "classes.csv"), 1, tmp_path / "b")
    with pytest.raises(ValidationError, match="task binary"):
        log_spec(tmp_path / "classes.csv", task="binary")
    series = {"lookback": 4, "horizon": 1, "time_column": "size"}
    with pytest.raises(ValidationError, match=r"series recipe.*series.transform"):
        log_spec(tmp_path / "classes.csv", series=series)


def test_the_model_card_says_how_the_target_was_learnt(manifest: Manifest) -> None:
    from dltrain.evaluation.model_card_sections import _preprocessing

    lines = _preprocessing(SimpleNamespace(manifest=manifest))  # type: ignore[arg-type]
    assert "Target: `price` (learnt as its log; predicted in its own units)." in lines


@pytest.mark.slow
def test_from_the_shell_a_log_target_trains_and_predicts_in_its_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes(200, seed=5).to_csv(tmp_path / "homes.csv", index=False)
    recipe = {
        "name": "homes",
        "data": {"source": "homes.csv", "target": "price", "target_transform": "log"},
        "model": {"family": "mlp", "units": [16], "dropout": 0.0, "ensemble": 2},
        "train": {"epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.02}},
    }
    monkeypatch.chdir(tmp_path)
    scored = train_and_predict_training_rows(tmp_path, recipe)
    predicted, rmse = scored.predicted, scored.rmse
    prices = scored.rows["__y__"].to_numpy(float)
    # prices (about e^10 to e^13), not their logs; and what evaluate scored
    assert predicted.min() > prices.min() / 10 and predicted.max() < prices.max() * 10
    assert np.sqrt(np.mean((predicted - prices) ** 2)) == pytest.approx(rmse, abs=1.0)
