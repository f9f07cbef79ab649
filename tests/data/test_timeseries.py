"""Time series: gaps put back and filled, windows in time order, targets never cross splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.data.prepare import prepare
from dltrain.errors import DataError
from dltrain.recipe.data import DataSpec


def write_series(
    path: Path, days: int = 100, drop: tuple[int, ...] = (), shuffle: bool = False
) -> pd.DataFrame:
    dates = pd.date_range("2021-01-01", periods=days, freq="D")
    frame = pd.DataFrame(
        {
            "when": dates.strftime("%Y-%m-%d"),
            "temp": np.arange(days, dtype=float),  # the value is the day number: easy to check
            "wind": np.arange(days, dtype=float) * 10,
        }
    ).drop(index=list(drop))
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=0)
    frame.to_csv(path, index=False, lineterminator="\r\n")
    return frame


def spec(path: Path, **series: object) -> DataSpec:
    return DataSpec.model_validate(
        {
            "source": path,
            "target": "temp",
            "series": {"lookback": 5, "horizon": 2, **series},
            "split": {"validation": 0.2, "test": 0.2},
        }
    )


def test_windows_in_time_order_with_gaps_filled(tmp_path: Path) -> None:
    write_series(tmp_path / "s.csv", drop=(30, 31), shuffle=True)
    dataset = prepare(spec(tmp_path / "s.csv"), 1, tmp_path / "out").dataset
    manifest = dataset.manifest.to_json()
    assert manifest["task"] == "forecasting"
    assert manifest["features"]["shape"] == [5, 2] and manifest["features"]["columns"] == [
        "temp",
        "wind",
    ]
    assert manifest["target"] == {
        "columns": ["temp"],
        "horizon": 2,
        "lookback": 5,
        "mean": [pytest.approx(29.5)],
        "std": [pytest.approx(np.arange(60).std())],
        "min": [0.0],  # the training steps' range
        "max": [59.0],
    }
    assert "2 missing step(s) put back" in manifest["features"]["frequency"]
    x, y = dataset.load_split("train")
    assert x.shape == (54, 5, 2) and y.shape == (54, 2, 1)
    # interpolated days 30 and 31 read 30 and 31; every window is 5 consecutive days
    np.testing.assert_allclose(x[25, :, 0], [25, 26, 27, 28, 29])
    np.testing.assert_allclose(x[26, :, 0], [26, 27, 28, 29, 30])
    np.testing.assert_allclose(y[:, :, 0], x[:, -1:, 0] + [[1, 2]])
    validation_x, validation_y = dataset.load_split("validation")
    test_x, test_y = dataset.load_split("test")
    assert validation_y.min() == 60 and validation_y.max() == 79  # targets inside the split
    assert validation_x.min() == 55  # the lookback reaches back into training days
    assert test_y.min() == 80 and test_y.max() == 99
    assert len(validation_x) == 19 and len(test_x) == 19
    variance = manifest["preprocessing"]["variance"]
    assert variance[0] == pytest.approx(np.arange(60).var())  # scaling from training rows only


def test_lookback_longer_than_the_series(tmp_path: Path) -> None:
    write_series(tmp_path / "s.csv", days=30)
    with pytest.raises(DataError, match="lookback 40 \\+ horizon 2"):
        prepare(spec(tmp_path / "s.csv", lookback=40), 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_repeated_times_and_unparsable_times(tmp_path: Path) -> None:
    frame = write_series(tmp_path / "s.csv", days=20)
    pd.concat([frame, frame.iloc[[3]]]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DataError, match="appear more than once"):
        prepare(spec(tmp_path / "r.csv", lookback=2), 1, tmp_path / "out")
    frame.assign(when=frame["when"].where(frame.index != 4, "someday")).to_csv(
        tmp_path / "u.csv", index=False
    )
    with pytest.raises(DataError, match="row 5: 'someday'"):
        prepare(spec(tmp_path / "u.csv", lookback=2, time_column="when"), 1, tmp_path / "out")


def test_several_targets_and_fixed_features(tmp_path: Path) -> None:
    write_series(tmp_path / "s.csv", days=60)
    spec_ = DataSpec.model_validate(
        {
            "source": tmp_path / "s.csv",
            "target": ["temp", "wind"],
            "series": {"lookback": 4, "horizon": 3, "features": ["temp"], "stride": 2},
        }
    )
    dataset = prepare(spec_, 1, tmp_path / "out").dataset
    x, y = dataset.load_split("train")
    assert dataset.manifest.to_json()["features"]["columns"] == [
        "temp",
        "wind",
    ]  # targets are inputs too
    assert x.shape[1:] == (4, 2) and y.shape[1:] == (3, 2)
    np.testing.assert_allclose(y[:, :, 1], y[:, :, 0] * 10)
    np.testing.assert_allclose(np.diff(x[:, 0, 0]), 2)  # a window every second day


def test_calendar_features_follow_each_window_step(tmp_path: Path) -> None:
    write_series(tmp_path / "s.csv", days=400, drop=(200,))  # from 2021-01-01, a gap put back
    dataset = prepare(
        spec(tmp_path / "s.csv", calendar=["day_of_year", "day_of_week"]), 1, tmp_path / "out"
    ).dataset
    columns = dataset.manifest.to_json()["features"]["columns"]
    assert columns == [
        "temp",
        "wind",
        "day_of_year_sin",
        "day_of_year_cos",
        "day_of_week_sin",
        "day_of_week_cos",
    ]
    assert dataset.manifest.to_json()["features"]["shape"] == [5, 6]
    x, _ = dataset.load_split("train")
    day = x[:, :, 0].astype(int)  # temp is the day number since 2021-01-01
    dates = pd.Timestamp("2021-01-01") + pd.to_timedelta(day.ravel(), unit="D")
    year_angle = 2 * np.pi * (dates.day_of_year.to_numpy() - 1) / 365.25
    np.testing.assert_allclose(x[:, :, 2].ravel(), np.sin(year_angle), atol=1e-6)
    np.testing.assert_allclose(x[:, :, 3].ravel(), np.cos(year_angle), atol=1e-6)
    week_angle = 2 * np.pi * dates.day_of_week.to_numpy() / 7
    np.testing.assert_allclose(x[:, :, 4].ravel(), np.sin(week_angle), atol=1e-6)
    assert x[0, 0, 3] == pytest.approx(1.0)  # 1 January: the start of the yearly cycle


def test_calendar_refuses_repeats_and_clashing_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="names day_of_year more than once"):
        spec(tmp_path / "s.csv", calendar=["day_of_year", "day_of_year"])
    with pytest.raises(ValueError, match="calendar"):
        spec(tmp_path / "s.csv", calendar=["month_of_year"])
    frame = write_series(tmp_path / "s.csv", days=60)
    frame.assign(time_of_day_cos=1.0).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match="already has a column of that name"):
        prepare(spec(tmp_path / "c.csv", calendar=["time_of_day"]), 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("freq", "season"),
    [("h", 24), ("D", 7), ("W-SUN", 52), ("MS", 12), ("ME", 12), ("QS", 4), ("YS", None)],
)
def test_seasonal_period_from_the_time_step(freq: str, season: int | None) -> None:
    from dltrain.data.preparation.series_time import seasonal_period

    assert seasonal_period(pd.date_range("2000-01-01", periods=40, freq=freq)) == season


def test_season_recorded_in_the_manifest_and_overridable(tmp_path: Path) -> None:
    write_series(tmp_path / "s.csv")
    inferred = prepare(spec(tmp_path / "s.csv"), 1, tmp_path / "a").dataset.manifest
    assert inferred.series is not None and inferred.series.season == 7  # daily steps
    pinned = prepare(spec(tmp_path / "s.csv", season=5), 1, tmp_path / "b").dataset.manifest
    assert pinned.series is not None and pinned.series.season == 5
