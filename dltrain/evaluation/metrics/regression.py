"""Regression metrics in the target's units, and forecasting's per-step and naive-ratio view
(NumPy only)."""

from __future__ import annotations

import numpy as np

from dltrain.evaluation.metrics.common import divide, mean_defined, unit_weights
from dltrain.evaluation.metrics.scores import DetailRow, DetailTable, Metrics, ScoreReport


def _as_columns(values: np.ndarray, num_examples: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(num_examples, -1)


class RegressionScorer:
    """Regression metrics in the target's own units; several targets are averaged uniformly.

    Args:
        y_true: targets, shape (n,) or (n, targets).
        y_pred: predictions of the same size.
        names: one name per target column, for the per-target table.
    """

    def __init__(
        self, y_true: np.ndarray, y_pred: np.ndarray, names: list[str] | None = None
    ) -> None:
        self.num_examples = len(y_true)
        self.y_true = _as_columns(y_true, self.num_examples)
        self.y_pred = _as_columns(y_pred, self.num_examples)
        if self.y_true.shape != self.y_pred.shape:
            raise ValueError(
                f"targets {self.y_true.shape} and predictions {self.y_pred.shape} differ in shape"
            )
        width = self.y_true.shape[1]
        self.names = (
            names if names and len(names) == width else [f"target_{i}" for i in range(width)]
        )

    def _columns(self, w: np.ndarray) -> dict[str, list[float | None]]:
        total = w.sum()
        error = self.y_pred - self.y_true
        mse = (w @ error**2) / total
        mae = (w @ np.abs(error)) / total
        nonzero = self.y_true != 0
        relative = divide(np.abs(error), np.abs(self.y_true))
        mape_weight = w @ nonzero
        mape = [
            float(100 * (w @ (relative[:, j] * nonzero[:, j])) / mape_weight[j])
            if mape_weight[j] > 0
            else None
            for j in range(error.shape[1])
        ]
        mean = (w @ self.y_true) / total
        spread = w @ (self.y_true - mean) ** 2
        r2 = [
            float(1 - (w @ error[:, j] ** 2) / spread[j]) if spread[j] > 0 else None
            for j in range(error.shape[1])
        ]
        return {
            "mse": [float(v) for v in mse],
            "rmse": [float(v) for v in np.sqrt(mse)],
            "mae": [float(v) for v in mae],
            "mape": mape,
            "r2": r2,
        }

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """MSE, RMSE, MAE, MAPE (%) and R², each averaged over target columns."""
        columns = self._columns(unit_weights(self.num_examples, weights))
        return {name: mean_defined(values) for name, values in columns.items()}

    def report(self) -> ScoreReport:
        """Headline metrics, plus one row per target column when there are several."""
        if len(self.names) <= 1:
            return ScoreReport(self.headline())
        columns = self._columns(unit_weights(self.num_examples, None))
        rows = [
            DetailRow(name, {m: values[j] for m, values in columns.items()})
            for j, name in enumerate(self.names)
        ]
        return ScoreReport(self.headline(), per_target=DetailTable("target", rows))


class ForecastingScorer:
    """Regression metrics over every forecast step, plus the ratio to the naive forecast.

    The naive forecast repeats the last observed value of each target over the whole horizon;
    a ratio below 1 means the model beats it.

    Args:
        y_true: targets, shape (n, horizon) or (n, horizon, targets).
        y_pred: predictions of the same size.
        last_observed: the last value of each target in each input window, shape (n,) or
            (n, targets); None when the inputs do not hold the target (no ratio then).
        names: one name per target.
        width: targets per step (default: y_true's third axis, else 1).
    """

    def __init__(
        self,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        last_observed: np.ndarray | None = None,
        names: list[str] | None = None,
        width: int | None = None,
    ) -> None:
        self.num_examples = len(y_true)
        true = np.asarray(y_true, dtype=np.float64)
        steps = true.reshape(self.num_examples, -1).shape[1]
        if width is None:
            width = 1 if true.ndim <= 2 else int(np.prod(true.shape[2:]))
        self.horizon = steps // width
        self.width = width
        shape = (self.num_examples * self.horizon, width)
        self._flat = RegressionScorer(true.reshape(shape), np.asarray(y_pred).reshape(shape), names)
        self._naive: RegressionScorer | None = None
        if last_observed is not None:
            last = np.asarray(last_observed, dtype=np.float64).reshape(self.num_examples, 1, width)
            naive = np.broadcast_to(last, (self.num_examples, self.horizon, width))
            self._naive = RegressionScorer(true.reshape(shape), naive.reshape(shape), names)

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """Regression metrics over all steps, and MAE/RMSE over those of the naive forecast."""
        w = None if weights is None else np.repeat(np.asarray(weights, np.float64), self.horizon)
        metrics = self._flat.headline(w)
        ratios: Metrics = {"mae_ratio_to_naive": None, "rmse_ratio_to_naive": None}
        if self._naive is not None:
            naive = self._naive.headline(w)
            for name in ("mae", "rmse"):
                model, base = metrics[name], naive[name]
                if model is not None and base:
                    ratios[f"{name}_ratio_to_naive"] = model / base
        return {**metrics, **ratios}

    def report(self) -> ScoreReport:
        """Headline metrics plus MAE and RMSE at each step ahead."""
        error = (self._flat.y_pred - self._flat.y_true).reshape(
            self.num_examples, self.horizon, self.width
        )
        per_step = [
            DetailRow(
                step + 1,
                {
                    "mae": float(np.abs(error[:, step]).mean()),
                    "rmse": float(np.sqrt((error[:, step] ** 2).mean())),
                },
            )
            for step in range(self.horizon)
        ]
        return ScoreReport(self.headline(), per_step=DetailTable("step", per_step))
