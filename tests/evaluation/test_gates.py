"""Gate expressions, their checks against the task's metrics, and baseline comparisons."""

from __future__ import annotations

import pytest

from dltrain.errors import UsageError
from dltrain.evaluation.catalog import Better, better, task_metrics
from dltrain.evaluation.gates import apply_gates, check_gate_names, compare_with_baseline
from dltrain.evaluation.metrics import ClassScores
from dltrain.recipe.gates import parse_gate

PER_CLASS = [
    ClassScores("cat", precision=0.9, recall=0.7, f1=0.79, support=10, roc_auc=None, pr_auc=None),
    ClassScores(
        "T-shirt/top", precision=0.5, recall=0.95, f1=0.66, support=20, roc_auc=0.9, pr_auc=0.8
    ),
]


def test_parse_gates() -> None:
    gate = parse_gate(" accuracy >= 0.9 ")
    assert (gate.metric, gate.operator, gate.bound) == ("accuracy", ">=", 0.9)
    gate = parse_gate("recall[T-shirt/top]>.8")
    assert (gate.base, gate.class_name, gate.bound) == ("recall", "T-shirt/top", 0.8)
    assert parse_gate("rmse<1e3").bound == 1000.0
    for text in ("accuracy=0.9", "accuracy >= high", ">= 0.9", "accuracy>=0.9 and f1>0", ""):
        with pytest.raises(UsageError, match="does not parse"):
            parse_gate(text)


def test_apply_gates_with_each_operator() -> None:
    metrics = {"accuracy": 0.9, "loss": 0.3, "roc_auc": None}
    texts = ["accuracy>=0.9", "accuracy>0.9", "loss<=0.3", "loss<0.3", "roc_auc>=0.5"]
    results = apply_gates([parse_gate(t) for t in texts], metrics)
    assert [r.passed for r in results] == [True, False, True, False, False]  # undefined fails
    per_class = apply_gates(
        [parse_gate("recall[cat]>=0.8"), parse_gate("precision[T-shirt/top]>=0.5")],
        metrics,
        PER_CLASS,
    )
    assert [(r.value, r.passed) for r in per_class] == [(0.7, False), (0.5, True)]


def test_unknown_metrics_and_classes_are_refused_with_a_suggestion() -> None:
    known = [m.name for m in task_metrics("multiclass", num_classes=10)]
    classes = ["cat", "dog"]
    check_gate_names([parse_gate("f1_macro>=0.8"), parse_gate("recall[dog]>0.5")], known, classes)
    with pytest.raises(UsageError, match="Did you mean `accuracy`"):
        check_gate_names([parse_gate("acuracy>=0.9")], known, classes)
    with pytest.raises(UsageError, match="Its classes: cat, dog"):
        check_gate_names([parse_gate("recall[cow]>=0.5")], known, classes)
    with pytest.raises(UsageError, match="per-class metric"):
        check_gate_names([parse_gate("loss[cat]<=1")], known, classes)
    regression = [m.name for m in task_metrics("regression")]
    with pytest.raises(UsageError, match="does not report"):
        check_gate_names([parse_gate("accuracy>=0.9")], regression, [])


def test_catalogue_by_task() -> None:
    binary = [m.name for m in task_metrics("binary", num_classes=2)]
    assert {"precision", "recall", "f1", "roc_auc", "expected_calibration_error"} <= set(binary)
    assert "top_3_accuracy" not in binary
    assert "top_3_accuracy" in [m.name for m in task_metrics("multiclass", num_classes=10)]
    forecasting = [m.name for m in task_metrics("forecasting")]
    assert {"rmse", "mape", "r2", "mae_ratio_to_naive"} <= set(forecasting)
    assert better("loss") == Better.LOWER and better("recall[cat]") == Better.HIGHER
    assert better("anomaly_threshold") == Better.NEITHER


def test_baseline_comparison_respects_direction_and_tolerance() -> None:
    current = {"accuracy": 0.90, "log_loss": 0.35, "roc_auc": None, "anomaly_threshold": 3.0}
    baseline = {"accuracy": 0.92, "log_loss": 0.30, "roc_auc": 0.9, "anomaly_threshold": 1.0}
    names = ["accuracy", "log_loss", "roc_auc", "anomaly_threshold"]
    strict = {c.metric: c for c in compare_with_baseline(names, current, baseline, 0.0)}
    assert "anomaly_threshold" not in strict  # no better direction: not compared
    assert strict["accuracy"].change == pytest.approx(-0.02) and not strict["accuracy"].passed
    assert not strict["log_loss"].passed  # loss went up: worse
    assert not strict["roc_auc"].passed  # undefined now, defined before
    loose = {c.metric: c for c in compare_with_baseline(names, current, baseline, 0.05)}
    assert loose["accuracy"].passed and loose["log_loss"].passed
    better_now = compare_with_baseline(["accuracy"], {"accuracy": 0.99}, {"accuracy": 0.5}, 0.0)
    assert better_now[0].passed
