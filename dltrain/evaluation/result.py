"""What one evaluation found, typed, and writing it into the run folder as metrics.json (see
docs/metrics-schema.md) beside its Markdown report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltrain.atomic import remove_stale_partials, write_json_atomic, write_text_atomic
from dltrain.data.readers.model_input import InputReport
from dltrain.evaluation.gates import BaselineResult, GateResult
from dltrain.evaluation.importance import Importance
from dltrain.evaluation.metrics import Interval, Metrics, ScoreReport
from dltrain.evaluation.report import render_markdown
from dltrain.evaluation.threshold import StoredThreshold, ThresholdSummary, write_threshold
from dltrain.evaluation.tta import TtaViews
from dltrain.runs import RunFolder

SCHEMA_VERSION = 3  # 3: baselines, baseline_notes and warnings


@dataclass(frozen=True)
class BootstrapSettings:
    """How the confidence intervals were drawn."""

    resamples: int
    confidence: float
    seed: int

    def to_json(self) -> dict[str, int | float]:
        """The settings as the metrics document's ``bootstrap`` entry."""
        return {"resamples": self.resamples, "confidence": self.confidence, "seed": self.seed}


@dataclass(frozen=True)
class CalibrationSummary:
    """A temperature-scaled model's calibration on the evaluated examples, without and with its
    temperature (``train.calibration: temperature``)."""

    temperature: float
    fitted_on: str  # the split T was fitted on at training
    ece_before: float | None  # expected calibration error at T = 1
    ece_after: float | None  # at T: the model as saved, the same as metrics' value
    log_loss_before: float | None
    log_loss_after: float | None

    def to_json(self) -> dict[str, object]:
        """The metrics document's ``temperature_scaling`` entry."""
        return {
            "temperature": self.temperature,
            "fitted_on": self.fitted_on,
            "expected_calibration_error_before": self.ece_before,
            "expected_calibration_error": self.ece_after,
            "log_loss_before": self.log_loss_before,
            "log_loss": self.log_loss_after,
        }


@dataclass(frozen=True)
class MetricsDocument:
    """Everything one evaluation of a run found: metrics, detail, intervals, gates, baseline.

    ``to_json`` gives metrics.json (and ``evaluate --json``), ``schema_version`` 3.
    """

    run: Path
    recipe: str
    task: str
    data: Mapping[str, object]  # where the examples came from: a split, or files
    num_examples: int
    evaluated: str  # ISO time, seconds
    scores: ScoreReport
    intervals: dict[str, Interval] = field(default_factory=dict)
    bootstrap: BootstrapSettings | None = None
    threshold: ThresholdSummary | None = None
    plots: list[str] = field(default_factory=list)  # relative to the run folder
    gates: list[GateResult] = field(default_factory=list)
    baseline: BaselineResult | None = None
    inputs: InputReport = field(default_factory=InputReport)  # --data tables: per column
    baselines: dict[str, Metrics] = field(default_factory=dict)  # prior, mean, naive, gbm, …
    baseline_notes: list[str] = field(default_factory=list)  # absent baselines and why; fits
    warnings: list[str] = field(default_factory=list)  # said out loud: lost to a baseline, …
    calibration: CalibrationSummary | None = None  # a model holding a temperature
    importance: Importance | None = None  # --importance: permutation importance per column
    tta: TtaViews | None = None  # test-time augmentation: the views averaged, if any

    @property
    def split(self) -> str | None:
        """The prepared split evaluated; None for raw data passed with --data."""
        split = self.data.get("split")
        return None if split is None else str(split)

    @property
    def passed(self) -> bool:
        """Whether every gate held and no metric fell below the baseline's."""
        comparisons = self.baseline.comparisons if self.baseline else []
        return all(g.passed for g in self.gates) and all(c.passed for c in comparisons)

    def failures(self) -> list[str]:
        """One phrase per failed gate or comparison, for the error paragraph."""
        found = [
            f"{g.gate.metric} is {_number(g.value)}, not {g.gate.operator} {_bound(g)}"
            for g in self.gates
            if not g.passed
        ]
        if self.baseline is not None:
            found += [
                f"{c.metric} fell from {_number(c.baseline)} to {_number(c.value)}"
                for c in self.baseline.comparisons
                if not c.passed
            ]
        return found

    def to_json(self) -> dict[str, Any]:
        """The metrics document as metrics.json and ``evaluate --json`` hold it."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run": str(self.run),
            "recipe": self.recipe,
            "task": self.task,
            "split": self.data.get("split"),
            "data": dict(self.data),
            "num_examples": self.num_examples,
            "inputs": self.inputs.to_json(),
            "evaluated": self.evaluated,
            **self.scores.to_json(),
            "intervals": {name: ci.to_json() for name, ci in self.intervals.items()},
            "bootstrap": None if self.bootstrap is None else self.bootstrap.to_json(),
            "threshold": None if self.threshold is None else self.threshold.to_json(),
            "plots": self.plots,
            "gates": [g.to_json() for g in self.gates],
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "baselines": {name: dict(metrics) for name, metrics in self.baselines.items()},
            "baseline_notes": self.baseline_notes,
            "warnings": self.warnings,
            "temperature_scaling": None if self.calibration is None else self.calibration.to_json(),
            "importance": None if self.importance is None else self.importance.to_json(),
            "tta": None if self.tta is None else self.tta.to_json(),
            "passed": self.passed,
        }


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _bound(result: GateResult) -> str:
    """A gate's bound as the failure names it: the number, or the baseline and its value."""
    gate = result.gate
    if gate.against is None:
        return f"{gate.bound:g}"
    value = None if gate.bound != gate.bound else gate.bound  # NaN: the baseline's is undefined
    return f"{gate.against.text} ({_number(value)})"


@dataclass(frozen=True)
class Evaluation:
    """An evaluation's document, and the metrics file it was written to."""

    document: MetricsDocument
    metrics_path: Path

    @property
    def passed(self) -> bool:
        """Whether every gate and baseline comparison passed (exit code 0)."""
        return self.document.passed

    def failures(self) -> list[str]:
        """One phrase per failed gate or comparison, for the error paragraph."""
        return self.document.failures()


def write_evaluation(
    files: RunFolder, label: str, document: MetricsDocument, new_threshold: StoredThreshold | None
) -> Path:
    """Write the metrics document, its Markdown report and a newly chosen threshold.

    Args:
        files: the evaluated run's folder, which receives the files.
        label: the examples' label (test, validation, data-<name>), which names the files.
        document: the metrics document.
        new_threshold: a threshold chosen by this evaluation, to be stored; None otherwise.

    Returns:
        The metrics file written.
    """
    own = [files.metrics(label).name, files.report(label).name, files.threshold.name]
    remove_stale_partials(files.path, own)  # what a killed evaluate of these files left
    if new_threshold is not None:
        write_threshold(files.path, new_threshold)
    write_json_atomic(files.metrics(label), document.to_json())
    write_text_atomic(files.report(label), render_markdown(document))
    return files.metrics(label)
