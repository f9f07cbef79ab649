"""The simple forecast a forecaster's network corrects (``data.series.transform``).

A window of ``lookback`` steps ends at time t; its targets are the steps t+1 … t+horizon. The
network does not predict those levels: it predicts the difference between each target and a
simple forecast made from the raw window itself, in units of that difference's root mean square
over the training windows:

    difference           y[t]                       (the naive, last-value forecast)
    seasonal_difference  y[t + h - season·ceil(h/season)]  (the seasonal naive forecast)
    detrend              y[t] + slope·h              (the last value along the training trend)

so a network that outputs zero forecasts exactly the simple forecast, and one that trends out of
its training range still only has to learn the change. The same two arrays describe the simple
forecast here (NumPy, for the statistics prepare stores) and inside the model (Keras ops, in
``models/io.py``), so they cannot disagree: which window step each horizon step starts from, and
what is added to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import DataError
from dltrain.recipe.data import SeriesTransform

_TINY = 1e-12  # a size below this is none: scale by 1 instead


def base_steps(
    transform: SeriesTransform, lookback: int, horizon: int, season: int | None
) -> np.ndarray:
    """The window step (0 … lookback-1) each horizon step's simple forecast starts from.

    Example: lookback 8, horizon 3, season 4 gives [7, 7, 7] for difference and detrend and
    [4, 5, 6] for seasonal_difference (the same step of the last season in the window).
    """
    h = np.arange(1, horizon + 1)
    if transform == SeriesTransform.SEASONAL_DIFFERENCE:
        assert season is not None and season <= lookback, "check_transform first"
        return (lookback - season + (h - 1) % season).astype(np.int64)
    return np.full(horizon, lookback - 1, dtype=np.int64)


def base_offsets(slope: list[float] | None, horizon: int, num_targets: int) -> np.ndarray:
    """What is added to the window's value for each (horizon step, target): slope·h, or 0."""
    if slope is None:
        return np.zeros((horizon, num_targets), np.float32)
    h = np.arange(1, horizon + 1, dtype=np.float64)[:, None]
    return (h * np.asarray(slope, np.float64)[None, :]).astype(np.float32)


def simple_forecast(
    x: np.ndarray,
    target_index: list[int],
    horizon: int,
    transform: SeriesTransform,
    season: int | None,
    slope: list[float] | None = None,
) -> np.ndarray:
    """The simple forecast of each raw window, (windows, horizon, targets), in the target's units.

    Args:
        x: raw windows, (windows, lookback, features).
        target_index: the window feature each target is.
        horizon: steps forecast.
        transform: which simple forecast (``none`` is taken as ``difference``: last value).
        season: steps a season (seasonal_difference).
        slope: per target, the trend per step (detrend).

    Example: the naive forecast of every window is
    ``simple_forecast(x, [0], 1, SeriesTransform.DIFFERENCE, None)``.
    """
    steps = base_steps(transform, x.shape[1], horizon, season)
    values = x[:, steps][:, :, target_index].astype(np.float64)
    return values + base_offsets(slope, horizon, len(target_index))


def check_transform(
    transform: SeriesTransform, lookback: int, season: int | None, source: Path
) -> None:
    """A seasonal difference needs a season, and a window that reaches one season back.

    Raises:
        DataError: no season, or a lookback shorter than it.
    """
    if transform != SeriesTransform.SEASONAL_DIFFERENCE:
        return
    if season is None:
        raise DataError(
            f"`data.series.transform: seasonal_difference` needs the steps in a season, but the "
            f"time step of {source} has no usual season. Set `data.series.season`, or use "
            f"`transform: difference`."
        )
    if lookback < season:
        raise DataError(
            f"`data.series.transform: seasonal_difference` starts each forecast from the value "
            f"one season ({season} steps) before, but windows hold lookback {lookback} steps. "
            f"Set `data.series.lookback` to at least {season}, or use `transform: difference`."
        )


def fit_transform(
    transform: SeriesTransform,
    train_steps: np.ndarray,
    windows: tuple[np.ndarray, np.ndarray],
    target_index: list[int],
    season: int | None,
) -> dict[str, Any]:
    """The transform and its slope, input scale and output scale, from the training split only.

    Args:
        transform: the recipe's ``series.transform``.
        train_steps: the training steps' target values, (steps, targets), for the trend.
        windows: the training windows and their targets, (n, lookback, features) and
            (n, horizon, targets).
        target_index: the window feature each target is.
        season: steps a season.

    Returns:
        ``SeriesLayout``'s fields ``transform``, ``trend_slope``, ``window_rms`` and
        ``residual_rms`` (only ``transform`` for ``none``).
    """
    if transform == SeriesTransform.NONE:
        return {"transform": transform}
    x, y = windows
    slope = None
    if transform == SeriesTransform.DETREND:
        steps = np.arange(len(train_steps), dtype=np.float64)
        slope = [float(np.polyfit(steps, column, 1)[0]) for column in train_steps.T]
    residual = y - simple_forecast(x, target_index, y.shape[1], transform, season, slope)
    targets = x[:, :, target_index].astype(np.float64)
    relative = (targets - targets[:, -1:, :])[:, :-1]
    window_rms = _rms(relative.reshape(-1, len(target_index))) if relative.size else None
    return {
        "transform": transform,
        "trend_slope": slope,
        "window_rms": _spread(window_rms, len(target_index)),
        "residual_rms": [_spread(row, len(target_index)) for row in _rms(residual)],
    }


def _rms(values: np.ndarray) -> np.ndarray:
    """Root mean square over the first axis: the size of a departure, its mean included (a
    seasonal difference of a trending series is about the year's growth, with little spread)."""
    return np.sqrt(np.mean(np.square(values), axis=0))


def _spread(values: np.ndarray | None, count: int) -> list[float]:
    if values is None:
        return [1.0] * count
    return [float(v) if v > _TINY else 1.0 for v in values]
