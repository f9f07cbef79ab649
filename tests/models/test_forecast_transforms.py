"""Forecasters learn the departure from a simple forecast, inside the model (series.transform).

An untrained model (its last layer starts at zero) forecasts exactly the naive, seasonal naive or
trend forecast of the raw window; its outputs come back in the target's units; a saved model
still takes raw windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras
from dltrain.data.preparation.forecast_base import base_steps
from dltrain.data.prepare import prepare
from dltrain.data.store import PreparedDataset
from dltrain.errors import DataError
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec, SeriesTransform
from dltrain.recipe.models import MlpSpec, RnnSpec

SEASON = 7
DAYS = 150


def write_series(path: Path) -> pd.DataFrame:
    """Two targets on a daily index: a trend with a weekly season, and noise."""
    rng = np.random.default_rng(0)
    steps = np.arange(DAYS, dtype=float)
    frame = pd.DataFrame(
        {
            "day": pd.date_range("2022-01-01", periods=DAYS, freq="D").strftime("%Y-%m-%d"),
            "sales": 100 + 2.0 * steps + 5 * np.sin(2 * np.pi * steps / SEASON),
            "noise": rng.normal(0, 1, DAYS),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def prepared(tmp_path: Path, transform: str, **series: object) -> PreparedDataset:
    write_series(tmp_path / "s.csv")
    spec = DataSpec.model_validate(
        {
            "source": tmp_path / "s.csv",
            "target": ["sales", "noise"],
            "series": {"lookback": 10, "horizon": 3, "transform": transform, **series},
            "split": {"validation": 0.2, "test": 0.2},
        }
    )
    return prepare(spec, 1, tmp_path / "out").dataset


def untrained(dataset: PreparedDataset) -> keras.Model:
    return build_model(RnnSpec(units=[4]), ModelIO(dataset.manifest))


@pytest.mark.parametrize("family", [RnnSpec(units=[4]), MlpSpec(units=[4], ensemble=2)])
def test_untrained_model_forecasts_the_last_value(
    tmp_path: Path, family: RnnSpec | MlpSpec
) -> None:
    dataset = prepared(tmp_path, "difference")
    x, _ = dataset.load_split("test")
    forecast = build_model(family, ModelIO(dataset.manifest)).predict(x, verbose=0)
    assert forecast.shape == (len(x), 3, 2)  # horizon 3, two targets
    last = x[:, -1, :][:, None, :]  # window features are sales, noise: the targets' order
    np.testing.assert_allclose(forecast, np.broadcast_to(last, forecast.shape), rtol=1e-6)


def test_untrained_model_forecasts_the_value_a_season_before(tmp_path: Path) -> None:
    dataset = prepared(tmp_path, "seasonal_difference")
    assert dataset.manifest.series is not None and dataset.manifest.series.season == SEASON
    x, _ = dataset.load_split("test")
    forecast = untrained(dataset).predict(x, verbose=0)
    # horizon step h (1-3) repeats the window's step lookback - season + h - 1: steps 3, 4, 5
    np.testing.assert_allclose(forecast, x[:, [3, 4, 5], :], rtol=1e-6)


def test_untrained_model_forecasts_the_last_value_along_the_training_trend(
    tmp_path: Path,
) -> None:
    frame = write_series(tmp_path / "s.csv")
    dataset = prepared(tmp_path, "detrend")
    layout = dataset.manifest.series
    assert layout is not None and layout.trend_slope is not None
    train_steps = dataset.manifest.series.split_steps["train"]  # type: ignore[union-attr]
    expected_slope = np.polyfit(np.arange(train_steps), frame["sales"][:train_steps], 1)[0]
    assert layout.trend_slope[0] == pytest.approx(expected_slope, rel=1e-6)
    x, _ = dataset.load_split("test")
    forecast = untrained(dataset).predict(x, verbose=0)
    steps = np.arange(1, 4, dtype=float)[None, :, None]
    expected = x[:, -1, :][:, None, :] + steps * np.asarray(layout.trend_slope)
    np.testing.assert_allclose(forecast, expected, rtol=1e-5)


@pytest.mark.parametrize("transform", ["difference", "seasonal_difference", "detrend"])
def test_the_network_output_is_a_departure_in_the_targets_units(
    tmp_path: Path, transform: str
) -> None:
    dataset = prepared(tmp_path, transform)
    layout = dataset.manifest.series
    assert layout is not None and layout.residual_rms is not None
    model = untrained(dataset)
    x, _ = dataset.load_split("test")
    before = model.predict(x, verbose=0)
    head = model.get_layer("standardized")
    kernel, _ = head.get_weights()
    bias = np.array([1.0, -2.0] * 3, dtype="float32")  # (horizon, targets) flattened
    head.set_weights([kernel, bias])
    after = model.predict(x, verbose=0)
    expected = bias.reshape(3, 2) * np.asarray(layout.residual_rms)
    np.testing.assert_allclose(after - before, np.broadcast_to(expected, after.shape), rtol=1e-4)


def test_output_scale_is_the_training_size_of_the_departure(tmp_path: Path) -> None:
    dataset = prepared(tmp_path, "difference")
    layout = dataset.manifest.series
    assert layout is not None and layout.residual_rms is not None
    x, y = dataset.load_split("train")
    change = y - x[:, -1:, :]  # the targets are the window's two features
    rms = np.sqrt((change.astype(np.float64) ** 2).mean(axis=0))
    np.testing.assert_allclose(layout.residual_rms, rms, rtol=1e-5)
    relative = (x - x[:, -1:, :])[:, :-1].reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(
        layout.window_rms or [], np.sqrt((relative**2).mean(axis=0)), rtol=1e-5
    )


def test_saved_model_takes_raw_windows(tmp_path: Path) -> None:
    dataset = prepared(tmp_path, "seasonal_difference")
    model = untrained(dataset)
    model.get_layer("standardized").set_weights(
        [w + 0.01 for w in model.get_layer("standardized").get_weights()]
    )
    x, _ = dataset.load_split("validation")
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
    )


def test_transform_none_predicts_the_level(tmp_path: Path) -> None:
    dataset = prepared(tmp_path, "none")
    layout = dataset.manifest.series
    assert layout is not None and layout.transform == SeriesTransform.NONE
    assert layout.residual_rms is None and layout.window_rms is None
    model = untrained(dataset)
    assert model.get_layer("target_units") is not None


def test_seasonal_difference_needs_a_season_and_a_window_that_reaches_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lookback 5 steps.*at least 7"):
        prepared(tmp_path, "seasonal_difference", lookback=5)
    yearly = pd.DataFrame({"year": [f"{1900 + i}-01-01" for i in range(60)], "v": np.arange(60.0)})
    yearly.to_csv(tmp_path / "y.csv", index=False)
    spec = DataSpec.model_validate(
        {
            "source": tmp_path / "y.csv",
            "target": "v",
            "series": {"lookback": 5, "transform": "seasonal_difference"},
        }
    )
    with pytest.raises(DataError, match="no usual season.*data.series.season"):
        prepare(spec, 1, tmp_path / "out2")


def test_base_steps_wrap_to_the_last_season_in_the_window() -> None:
    seasonal = SeriesTransform.SEASONAL_DIFFERENCE
    assert base_steps(seasonal, 8, 6, 4).tolist() == [4, 5, 6, 7, 4, 5]
    assert base_steps(SeriesTransform.DIFFERENCE, 8, 2, None).tolist() == [7, 7]
