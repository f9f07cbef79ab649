"""Gates CI can trust: ``--require "accuracy>=0.9"`` and comparisons with a baseline run. Light.

A gate (parsed by ``dltrain.recipe.gates``) names any headline metric of the task (``dltrain
evaluate`` lists them) or a per-class one written ``recall[cat]`` (precision, recall, f1, roc_auc,
pr_auc of the class named ``cat``), against a number or a baseline's value on the same examples
(``rmse<=baseline.gbm.rmse``); this module checks gates against an evaluation's numbers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltrain.errors import UsageError
from dltrain.evaluation.catalog import KEY_METRICS, PER_CLASS, Better, better
from dltrain.recipe.gates import Gate

if TYPE_CHECKING:  # the metrics package loads NumPy; this module stays light
    from dltrain.evaluation.metrics import ClassScores, Metrics


def check_gate_names(
    gates: Sequence[Gate],
    known: Sequence[str],
    classes: Sequence[str],
    baselines: Sequence[str] = (),
) -> None:
    """Refuse gates on metrics the task does not report, before anything is computed.

    Args:
        gates: the parsed gates.
        known: the headline metrics the evaluation reports.
        classes: the model's classes (per-class gates), empty for other tasks.
        baselines: the baselines the evaluation will score, which gates may name.

    Raises:
        UsageError: a gate names an unknown metric, class or baseline.
    """
    for gate in gates:
        if gate.against is not None:
            _check_baseline_ref(gate, known, baselines)
        if gate.class_name is None:
            if gate.metric in known:
                continue
            guess = difflib.get_close_matches(gate.metric, list(known), n=1, cutoff=0.6)
            hint = f" Did you mean `{guess[0]}`?" if guess else ""
            raise UsageError(
                f"Gate {gate.text!r} names the metric `{gate.metric}`, which this model's "
                f"evaluation does not report.{hint} Known metrics: {', '.join(known)}"
                + (f"; per class: {', '.join(f'{m}[class]' for m in PER_CLASS)}" if classes else "")
                + "."
            )
        if gate.base not in PER_CLASS or not classes:
            raise UsageError(
                f"Gate {gate.text!r} asks for a per-class metric, which exists only for "
                f"classifiers and only as {', '.join(f'{m}[class]' for m in PER_CLASS)}."
            )
        if gate.class_name not in classes:
            raise UsageError(
                f"Gate {gate.text!r} names the class {gate.class_name!r}, which the model does "
                f"not have. Its classes: {', '.join(classes)}."
            )


def _check_baseline_ref(gate: Gate, known: Sequence[str], baselines: Sequence[str]) -> None:
    """Refuse ``baseline.NAME.METRIC`` naming a baseline this evaluation has not, or a metric
    its evaluation does not report.

    Raises:
        UsageError: the baseline is absent (gbm on images, a season on a series without one),
            or the metric unknown.
    """
    ref = gate.against
    assert ref is not None
    if ref.name not in baselines:
        fix = (
            f"Baselines available here: {', '.join(baselines)}; name one of those (e.g. "
            f"baseline.{baselines[0]}.{ref.metric}) or give a number."
            if baselines
            else "This evaluation has no baselines at all; give a number instead."
        )
        raise UsageError(
            f"Gate {gate.text!r} compares with the baseline `{ref.name}`, which this evaluation "
            f"does not have. {fix}"
        )
    if ref.metric not in known:
        guess = difflib.get_close_matches(ref.metric, list(known), n=1, cutoff=0.6)
        hint = f" Did you mean `{guess[0]}`?" if guess else ""
        raise UsageError(
            f"Gate {gate.text!r} names the baseline metric `{ref.metric}`, which this model's "
            f"evaluation does not report.{hint} Known metrics: {', '.join(known)}."
        )


@dataclass(frozen=True)
class GateResult:
    """A gate, the value it was checked against (None: undefined), and whether it held."""

    gate: Gate
    value: float | None
    passed: bool

    def to_json(self) -> dict[str, str | float | bool | None]:
        """The result as an entry of the metrics document's ``gates``."""
        return {
            "gate": self.gate.text,
            "metric": self.gate.metric,
            "operator": self.gate.operator,
            "bound": self.gate.bound if self.gate.bound == self.gate.bound else None,  # NaN
            "against": None if self.gate.against is None else self.gate.against.text,
            "value": self.value,
            "passed": self.passed,
        }


def metric_value(name: str, metrics: Metrics, per_class: Sequence[ClassScores]) -> float | None:
    """The value of a headline metric, or of a per-class one written ``recall[cat]``."""
    if "[" not in name:
        value = metrics.get(name)
        return None if value is None else float(value)
    base, cls = name.split("[", 1)
    for row in per_class:
        if row.name == cls[:-1]:
            return row.value(base)
    return None


def apply_gates(
    gates: Sequence[Gate],
    metrics: Metrics,
    per_class: Sequence[ClassScores] = (),
    baselines: Mapping[str, Metrics] | None = None,
) -> list[GateResult]:
    """Check each gate; an undefined metric (AUC of a split with one class) fails its gate.

    Args:
        gates: the parsed gates.
        metrics: the model's headline metrics.
        per_class: its per-class rows, for gates such as ``recall[cat]``.
        baselines: each baseline's headline metrics on the same examples, for gates such as
            ``rmse<=baseline.gbm.rmse``; a gate whose baseline value is undefined (or absent)
            fails, its bound NaN.

    Returns:
        One result per gate, its bound filled in from the baseline where it names one.
    """
    results = []
    for gate in gates:
        if gate.against is not None:
            bound = (baselines or {}).get(gate.against.name, {}).get(gate.against.metric)
            gate = gate.with_bound(float("nan") if bound is None else float(bound))
        value = metric_value(gate.metric, metrics, per_class)
        passed = value is not None and gate.bound == gate.bound and gate.holds(value)
        results.append(GateResult(gate, value, passed))
    return results


@dataclass(frozen=True)
class Comparison:
    """One metric of a run beside its baseline's, and whether it held within the tolerance."""

    metric: str
    value: float | None
    baseline: float | None
    change: float | None  # value - baseline
    passed: bool

    def to_json(self) -> dict[str, str | float | bool | None]:
        """The comparison as an entry of the metrics document's ``baseline.comparisons``."""
        return {
            "metric": self.metric,
            "value": self.value,
            "baseline": self.baseline,
            "change": self.change,
            "passed": self.passed,
        }


def compare_with_baseline(
    names: Sequence[str],
    metrics: Metrics,
    baseline: Metrics,
    tolerance: float,
    per_class: tuple[Sequence[ClassScores], Sequence[ClassScores]] = ((), ()),
) -> list[Comparison]:
    """Compare metrics with a baseline's; a metric fails when it got worse by more than tolerance.

    Args:
        names: the metrics to compare (those with no better direction are skipped).
        metrics: this run's headline metrics.
        baseline: the baseline run's headline metrics on the same examples.
        tolerance: the largest allowed drop, in the metric's own units (0.01 = one point of
            accuracy).
        per_class: (this run's, the baseline's) per-class rows, for names like ``recall[cat]``.
    """
    comparisons = []
    for name in names:
        direction = better(name)
        if direction == Better.NEITHER:
            continue
        value = metric_value(name, metrics, per_class[0])
        base = metric_value(name, baseline, per_class[1])
        if value is None or base is None:
            comparisons.append(Comparison(name, value, base, None, value is not None))
            continue
        change = value - base
        worse_by = -change if direction == Better.HIGHER else change
        comparisons.append(Comparison(name, value, base, change, worse_by <= tolerance + 1e-12))
    return comparisons


def compared_metrics(task: str, gates: Sequence[Gate]) -> list[str]:
    """The metrics a baseline comparison checks: the task's key metrics, then the gated ones."""
    return list(dict.fromkeys([*KEY_METRICS.get(task, ()), *(g.metric for g in gates)]))


@dataclass(frozen=True)
class BaselineResult:
    """How a run fared against a baseline run scored on the same examples."""

    run: Path  # the baseline run's folder
    tolerance: float
    metrics: Metrics  # the baseline's headline metrics
    comparisons: list[Comparison]

    def to_json(self) -> dict[str, Any]:
        """The result as the metrics document's ``baseline`` entry."""
        return {
            "run": str(self.run),
            "tolerance": self.tolerance,
            "metrics": self.metrics,
            "comparisons": [c.to_json() for c in self.comparisons],
        }
