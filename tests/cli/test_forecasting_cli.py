"""Forecasting through the CLI: horizons beyond one step through predict on raw windows, and a
starter recipe that beats the naive forecast on a trending series with no edits (init, predict and
evaluate from the shell; prepare and train in this process, as their own shell tests run them)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dltrain.backend import keras
from tests.conftest import invoke
from tests.conftest import run_dltrain as dltrain


def write_trend(path: Path, days: int, seed: int = 0) -> None:
    """A daily series that climbs out of its training range, with a weekly pattern and noise."""
    rng = np.random.default_rng(seed)
    steps = np.arange(days, dtype=float)
    values = 50 + 0.8 * steps + 6 * np.sin(2 * np.pi * steps / 7) + rng.normal(0, 0.5, days)
    frame = pd.DataFrame(
        {"day": pd.date_range("2023-01-01", periods=days).strftime("%Y-%m-%d"), "y": values}
    )
    frame.to_csv(path, index=False)


@pytest.mark.slow
def test_horizon_two_through_predict_on_raw_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_trend(tmp_path / "s.csv", 120)
    recipe = {
        "name": "trend",
        "data": {
            "source": "s.csv",
            "target": "y",
            "task": "forecasting",
            "series": {"lookback": 14, "horizon": 2},
        },
        "model": {"family": "rnn", "units": [8]},
        "train": {"epochs": 1, "batch_size": 16},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    for command in ("prepare", "train"):  # in this process; predict runs from the shell
        code, _, err = invoke(command)
        assert code == 0, err
    values = pd.read_csv(tmp_path / "s.csv")["y"].to_numpy(np.float32)
    windows = np.stack([values[i : i + 14] for i in range(100, 106)])[:, :, None]
    np.savez(tmp_path / "windows.npz", x=windows)
    predicted = dltrain(
        "predict", "--input", "windows.npz", "--output", "out.csv", "--json", cwd=tmp_path
    )
    assert predicted.returncode == 0, predicted.stderr
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {"prediction_t+1", "prediction_t+2"} <= set(rows[0])
    run = next((tmp_path / "runs" / "trend").iterdir())
    expected = keras.models.load_model(run / "model.keras").predict(windows, verbose=0)
    got = np.array([[float(r["prediction_t+1"]), float(r["prediction_t+2"])] for r in rows])
    np.testing.assert_allclose(got, expected[:, :, 0], rtol=1e-4)
    # in the series' own units: near the windows' last values, not near the training mean
    assert np.abs(got - windows[:, -1, :]).max() < 20


@pytest.mark.slow
def test_starter_forecaster_beats_naive_on_a_trend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dltrain init s.csv --target y --task forecasting && prepare && train && evaluate"""
    write_trend(tmp_path / "s.csv", 300)
    init = dltrain("init", "s.csv", "--target", "y", "--task", "forecasting", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    recipe = yaml.safe_load((tmp_path / "dltrain.yaml").read_text())
    assert recipe["data"]["series"]["lookback"] == 14  # two weekly seasons
    monkeypatch.chdir(tmp_path)
    for command in (["prepare"], ["train", "--epochs", "15"]):  # in this process
        code, _, err = invoke(*command)
        assert code == 0, err
    evaluated = dltrain("evaluate", "--json", "--no-plots", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)["metrics"]
    # the test days lie beyond every training value; naive misses the weekly swing
    assert metrics["mae_ratio_to_naive"] < 0.9
