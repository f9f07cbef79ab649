"""Permutation feature importance (Breiman 2001; scikit-learn's ``permutation_importance``) of a
table model: how much the deciding metric drops when one raw input column is shuffled across the
evaluated rows, breaking its link to the target while keeping its distribution.

NumPy only: the caller passes how to score a table of columns, so the model runs through the
same prediction path evaluate uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from dltrain.evaluation.catalog import Better

Columns = Mapping[str, np.ndarray]
Z_95 = 1.959964  # the normal quantile of a 95 % two-sided interval
INTERVAL = "mean ± 1.96·sd/√K over the K shuffles (normal approximation)"


@dataclass(frozen=True)
class ImportanceSettings:
    """How importance is measured: shuffles per column, the row cap and the seed."""

    repeats: int = 5
    max_rows: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class ColumnImportance:
    """One column's drop of the metric when shuffled: positive means the model relies on it."""

    column: str
    drop: float  # mean over the shuffles
    low: float  # the 95 % interval of the mean drop
    high: float
    drops: tuple[float, ...]  # each shuffle's drop

    def to_json(self) -> dict[str, object]:
        return {
            "column": self.column,
            "drop": self.drop,
            "low": self.low,
            "high": self.high,
            "drops": list(self.drops),
        }


@dataclass(frozen=True)
class Importance:
    """Every column's importance, most important first, and how it was measured."""

    metric: str
    value: float  # the metric on the unshuffled rows scored
    num_rows: int  # rows scored (at most ``max_rows`` of the evaluated ones)
    num_examples: int  # rows evaluated
    repeats: int
    seed: int
    columns: list[ColumnImportance]

    def to_json(self) -> dict[str, object]:
        """The ``importance`` entry of metrics.json (docs/metrics-schema.md)."""
        return {
            "metric": self.metric,
            "value": self.value,
            "num_rows": self.num_rows,
            "num_examples": self.num_examples,
            "repeats": self.repeats,
            "seed": self.seed,
            "interval": INTERVAL,
            "columns": [c.to_json() for c in self.columns],
        }


def _rows(columns: Columns, index: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.asarray(values)[index] for name, values in columns.items()}


def _interval(drops: np.ndarray) -> tuple[float, float, float]:
    mean = float(drops.mean())
    half = Z_95 * float(drops.std(ddof=1)) / np.sqrt(len(drops)) if len(drops) > 1 else 0.0
    return mean, mean - half, mean + half


def permutation_importance(
    columns: Columns,
    metric_of: Callable[[dict[str, np.ndarray], np.ndarray], float],
    metric: tuple[str, Better],
    settings: ImportanceSettings,
) -> Importance:
    """Shuffle each column in turn and measure the metric's drop.

    Args:
        columns: the evaluated rows, one array per raw input column (as prepare stores them).
        metric_of: scores the model on some rows: ``metric_of(columns, row_index)`` gets the
            (possibly shuffled) columns of the rows ``row_index`` picks, in that order, and
            returns the metric over them.
        metric: the metric's name and which way it improves; the drop is signed so that a
            positive drop is a worse score.
        settings: shuffles per column, the cap on rows (a seeded sample beyond it) and the seed.

    Returns:
        Each column's mean drop and its 95 % interval over the shuffles, largest drop first.

    Raises:
        ValueError: no columns, or no rows.
    """
    names = list(columns)
    total = len(np.asarray(columns[names[0]])) if names else 0
    if total == 0:
        raise ValueError("Permutation importance needs at least one column and one row.")
    index, rng = sample_rows(total, settings)
    rows = _rows(columns, index)
    return shuffled_importance(rows, index, total, rng, metric_of, metric, settings)


def sample_rows(total: int, settings: ImportanceSettings) -> tuple[np.ndarray, np.random.Generator]:
    """The rows importance scores (sorted; a seeded sample beyond ``settings.max_rows``), and
    the generator that then draws the shuffles: a caller holding the rows elsewhere (a
    streamed split) reads just these and passes them to :func:`shuffled_importance`."""
    rng = np.random.default_rng(settings.seed)
    index = np.arange(total)
    if total > settings.max_rows:
        index = np.sort(rng.choice(total, settings.max_rows, replace=False))
    return index, rng


def shuffled_importance(
    rows: dict[str, np.ndarray],
    index: np.ndarray,
    total: int,
    rng: np.random.Generator,
    metric_of: Callable[[dict[str, np.ndarray], np.ndarray], float],
    metric: tuple[str, Better],
    settings: ImportanceSettings,
) -> Importance:
    """Permutation importance over the sampled ``rows`` (rows ``index`` of ``total``), each
    column shuffled with ``rng`` as :func:`sample_rows` left it; see
    :func:`permutation_importance`."""
    name, direction = metric
    sign = -1.0 if direction is Better.LOWER else 1.0
    value = metric_of(rows, index)
    found = []
    for column in rows:
        drops = []
        for _ in range(settings.repeats):
            shuffled = dict(rows)
            shuffled[column] = rows[column][rng.permutation(len(index))]
            drops.append(sign * (value - metric_of(shuffled, index)))
        mean, low, high = _interval(np.asarray(drops, dtype=np.float64))
        found.append(ColumnImportance(column, mean, low, high, tuple(drops)))
    found.sort(key=lambda c: -c.drop)
    return Importance(name, value, len(index), total, settings.repeats, settings.seed, found)
