"""The trivial baselines' predictions, as the task's scorer reads a model's outputs (NumPy only).

- ``prior``: every example gets the training split's class shares as its probabilities, so its
  accuracy is the majority class's share and its log loss the entropy of the classes;
- ``mean``: every example gets the training split's mean of each target;
- ``naive``: a forecast that repeats each target's last observed value over the horizon;
- ``seasonal_naive``: a forecast that repeats the value one season before each predicted step
  (the last observed season, for steps further than a season ahead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prior_probabilities(class_counts: Sequence[int], num_examples: int) -> np.ndarray:
    """The class prior as an (n, classes) probability matrix.

    Args:
        class_counts: examples per class in the training split, in label order.
        num_examples: rows to predict.

    Raises:
        ValueError: no training examples to take shares of.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("the training split has no examples to take class shares of")
    return np.broadcast_to(counts / counts.sum(), (num_examples, len(counts))).copy()


def mean_predictions(means: Sequence[float], y_shape: tuple[int, ...]) -> np.ndarray:
    """The training mean of each target, one row per example, shaped like the targets."""
    values = np.asarray(means, dtype=np.float64)
    if len(y_shape) == 1:
        return np.full(y_shape, values[0])
    return np.broadcast_to(values, y_shape).copy()


def window_target_columns(
    x: np.ndarray, columns: Sequence[str], targets: Sequence[str], width: int
) -> list[int] | None:
    """Which features of each input window hold the targets; None when the windows lack them.

    A univariate series is its own target; a window with as many features as targets and no
    named columns holds the targets in order (as ``last_observed`` reads it).
    """
    if x.ndim == 3 and targets and all(t in columns for t in targets):
        return [list(columns).index(t) for t in targets]
    if x.ndim == 3 and x.shape[-1] == width and not columns:
        return list(range(width))
    if x.ndim == 2 and width == 1:
        return [0]
    return None


def _as_windows(x: np.ndarray) -> np.ndarray:
    return x[:, :, None] if x.ndim == 2 else x


def naive_forecast(x: np.ndarray, target_columns: Sequence[int], horizon: int) -> np.ndarray:
    """Each target's last observed value repeated over the horizon: (n, horizon, targets)."""
    last = _as_windows(x)[:, -1, list(target_columns)].astype(np.float64)
    return np.repeat(last[:, None, :], horizon, axis=1)


def seasonal_naive_forecast(
    x: np.ndarray, target_columns: Sequence[int], horizon: int, season: int
) -> np.ndarray:
    """The value one season before each predicted step: (n, horizon, targets).

    Step h (0-based) ahead of a window of ``lookback`` steps takes window position
    ``lookback - season + h % season``: one season back while that lies in the window, then the
    last observed season repeated.

    Raises:
        ValueError: a season shorter than 1, or longer than the window.
    """
    windows = _as_windows(x)
    lookback = windows.shape[1]
    if season < 1 or season > lookback:
        raise ValueError(f"a season of {season} steps needs a lookback of at least {season}")
    positions = [lookback - season + h % season for h in range(horizon)]
    picked = windows[:, positions, :][:, :, list(target_columns)]
    return np.asarray(picked, dtype=np.float64)
