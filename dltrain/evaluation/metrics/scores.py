"""What a task's scorer reports, as typed values: headline metrics and the task's detail tables.

Gates, baseline comparisons, plots and the reports read these fields; ``to_json`` gives the
metrics document's entries (per_class, confusion_matrix, …) at the file boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dltrain.evaluation.catalog import Metrics

Cell = str | int | float | None  # one cell of a detail table, as JSON holds it


@dataclass(frozen=True)
class ClassScores:
    """One class's row of the per-class table, at the decision threshold."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int
    roc_auc: float | None
    pr_auc: float | None

    def value(self, metric: str) -> float | None:
        """The row's ``metric`` (what a gate such as ``recall[cat]`` reads); None if unknown."""
        values: dict[str, float | int | None] = {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
        }
        value = values.get(metric)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Cell]:
        """The row as the metrics document's ``per_class`` entry holds it."""
        return {
            "class": self.name,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
        }


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (true, predicted) class pairs, and the same rows normalised to sum to 1."""

    labels: list[str]
    counts: list[list[int]]  # row = true class, column = predicted
    normalized: list[list[float]]

    def to_json(self) -> dict[str, list[str] | list[list[int]] | list[list[float]]]:
        """The matrix as the metrics document's ``confusion_matrix`` entry."""
        return {"labels": self.labels, "counts": self.counts, "normalized": self.normalized}


@dataclass(frozen=True)
class CalibrationBin:
    """One non-empty confidence bin: its range, examples, mean confidence and accuracy."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float

    def to_json(self) -> dict[str, float | int]:
        """The bin as a row of the metrics document's calibration table."""
        return {
            "low": self.low,
            "high": self.high,
            "count": self.count,
            "confidence": self.confidence,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class Calibration:
    """The reliability table behind the expected calibration error."""

    bins: int
    table: list[CalibrationBin]

    def to_json(self) -> dict[str, int | list[dict[str, float | int]]]:
        """The table as the metrics document's ``calibration`` entry."""
        return {"bins": self.bins, "table": [row.to_json() for row in self.table]}


@dataclass(frozen=True)
class DetailRow:
    """One row of a per-target or per-step table: its key and each metric's value."""

    key: str | int  # a target's name, or a forecast step (1 = the next one)
    values: Metrics  # metric name → value, in column order


@dataclass(frozen=True)
class DetailTable:
    """Regression's per-target or forecasting's per-step metrics, one row each."""

    column: str  # what the rows are: "target" or "step"
    rows: list[DetailRow]

    @property
    def metric_names(self) -> list[str]:
        """The table's metric columns, in order."""
        return list(self.rows[0].values) if self.rows else []

    def to_json(self) -> list[dict[str, Cell]]:
        """The rows as the metrics document holds them: the key under ``column``, then metrics."""
        return [{self.column: row.key, **row.values} for row in self.rows]


@dataclass(frozen=True)
class ErrorHistogram:
    """A histogram of an autoencoder's per-example reconstruction errors."""

    counts: list[int]
    edges: list[float]

    def to_json(self) -> dict[str, dict[str, list[int] | list[float]]]:
        """The histogram as the metrics document's ``reconstruction_error`` entry."""
        return {"histogram": {"counts": self.counts, "edges": self.edges}}


@dataclass(frozen=True)
class ScoreReport:
    """A scorer's headline metrics and whichever detail its task has.

    Classification fills ``per_class``, ``confusion_matrix`` and ``calibration``; regression
    ``per_target`` (several targets only); forecasting ``per_step``; autoencoders
    ``reconstruction_error``.
    """

    metrics: Metrics
    per_class: list[ClassScores] | None = None
    confusion_matrix: ConfusionMatrix | None = None
    calibration: Calibration | None = None
    per_target: DetailTable | None = None
    per_step: DetailTable | None = None
    reconstruction_error: ErrorHistogram | None = None

    @property
    def detail_tables(self) -> list[DetailTable]:
        """The per-target and per-step tables the task has, in report order."""
        return [t for t in (self.per_target, self.per_step) if t is not None]

    def to_json(self) -> dict[str, Any]:
        """The metrics document's task entries: ``metrics``, then the detail present."""
        document: dict[str, Any] = {"metrics": self.metrics}
        if self.per_class is not None:
            document["per_class"] = [row.to_json() for row in self.per_class]
        if self.confusion_matrix is not None:
            document["confusion_matrix"] = self.confusion_matrix.to_json()
        if self.calibration is not None:
            document["calibration"] = self.calibration.to_json()
        if self.per_target is not None:
            document["per_target"] = self.per_target.to_json()
        if self.per_step is not None:
            document["per_step"] = self.per_step.to_json()
        if self.reconstruction_error is not None:
            document["reconstruction_error"] = self.reconstruction_error.to_json()
        return document


class Scorer(Protocol):
    """What evaluate needs from a task's metrics: headline numbers under weights, and a report."""

    num_examples: int

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """The headline metrics, with each example counted ``weights[i]`` times."""
        ...

    def report(self) -> ScoreReport:
        """Headline metrics plus the task's detail (per class, per target, …)."""
        ...


@dataclass(frozen=True)
class Scored:
    """A task's scorer over a model's outputs, and its report (computed once)."""

    scorer: Scorer
    report: ScoreReport
