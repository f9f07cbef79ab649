"""Baselines on tiny arrays: each one's predictions and metrics, which baselines a run gets,
gates that name them, and the warnings evaluate and train say out loud."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dltrain.errors import UsageError
from dltrain.evaluation.baselines import BaselinePlan, baseline_outputs, plan_baselines
from dltrain.evaluation.baselines.trivial import (
    mean_predictions,
    naive_forecast,
    prior_probabilities,
    seasonal_naive_forecast,
    window_target_columns,
)
from dltrain.evaluation.baselines.verdicts import (
    MIN_EXAMPLES,
    losing_notes,
    losing_warnings,
    tiny_split_warning,
)
from dltrain.evaluation.catalog import task_metrics
from dltrain.evaluation.gates import apply_gates, check_gate_names
from dltrain.evaluation.metrics import ClassificationScorer, ForecastingScorer, RegressionScorer
from dltrain.evaluation.run_model import RunModel
from dltrain.manifest import SeriesLayout
from dltrain.recipe.gates import parse_gate
from dltrain.run_info import RunInfo
from tests.manifests import manifest_of


def test_prior_accuracy_is_the_majority_share_and_its_log_loss_the_entropy() -> None:
    y = np.array([0, 0, 1, 2, 0, 1, 0, 2, 0, 0])  # 6 of 10 in class 0
    probabilities = prior_probabilities([30, 10, 10], len(y))  # training shares 0.6, 0.2, 0.2
    assert probabilities.shape == (10, 3)
    metrics = ClassificationScorer(y, probabilities, ["a", "b", "c"]).headline()
    assert metrics["accuracy"] == pytest.approx(0.6)
    expected = -(6 * np.log(0.6) + 4 * np.log(0.2)) / 10
    assert metrics["log_loss"] == pytest.approx(expected)
    assert metrics["roc_auc"] == pytest.approx(0.5)  # one score for all: no ranking
    with pytest.raises(ValueError, match="no examples"):
        prior_probabilities([0, 0], 3)


def test_binary_prior_predicts_the_majority_class() -> None:
    y = np.array([1, 1, 1, 0])
    metrics = ClassificationScorer(y, prior_probabilities([20, 80], 4), ["no", "yes"]).headline()
    assert metrics["accuracy"] == pytest.approx(0.75) and metrics["recall"] == 1.0


def test_mean_predicts_the_training_mean_of_each_target() -> None:
    y = np.array([1.0, 2.0, 3.0, 6.0])
    predicted = mean_predictions([3.0], y.shape)
    assert predicted.tolist() == [3.0] * 4
    assert RegressionScorer(y, predicted).headline()["mae"] == pytest.approx(1.5)
    two = mean_predictions([1.0, -1.0], (3, 2))
    assert two.tolist() == [[1.0, -1.0]] * 3


def _windows(series: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    starts = range(lookback, len(series) - horizon + 1)
    x = np.stack([series[s - lookback : s] for s in starts])[:, :, None]
    y = np.stack([series[s : s + horizon] for s in starts])[:, :, None]
    return x, y


def test_naive_repeats_the_last_value_and_scores_a_known_mae() -> None:
    series = np.arange(10, dtype=np.float64) * 2.0  # a trend of +2 a step
    x, y = _windows(series, lookback=3, horizon=2)
    predicted = naive_forecast(x, [0], horizon=2)
    assert predicted[0, :, 0].tolist() == [4.0, 4.0]  # window 0, 2, 4 → 4, 4
    scorer = ForecastingScorer(y, predicted, x[:, -1, 0])
    metrics = scorer.headline()
    assert metrics["mae"] == pytest.approx(3.0)  # one step ahead off by 2, two by 4
    assert metrics["mae_ratio_to_naive"] == pytest.approx(1.0)


def test_seasonal_naive_is_exact_on_a_series_of_period_four() -> None:
    period = np.array([1.0, 5.0, 2.0, 8.0])
    series = np.tile(period, 6)
    x, y = _windows(series, lookback=6, horizon=6)  # beyond a season: the last one repeated
    predicted = seasonal_naive_forecast(x, [0], horizon=6, season=4)
    assert np.array_equal(predicted, y)
    naive = naive_forecast(x, [0], horizon=6)
    assert ForecastingScorer(y, predicted).headline()["mae"] == 0.0
    assert ForecastingScorer(y, naive).headline()["mae"] > 1.0
    with pytest.raises(ValueError, match="lookback of at least 7"):
        seasonal_naive_forecast(x, [0], horizon=1, season=7)


def test_window_target_columns() -> None:
    x = np.zeros((2, 5, 3))
    assert window_target_columns(x, ["a", "temp", "b"], ["temp"], 1) == [1]
    assert window_target_columns(x, ["a", "b", "c"], ["temp"], 1) is None
    assert window_target_columns(np.zeros((2, 5)), [], ["temp"], 1) == [0]


def _run(task: str, answers: str | None = None, **parts: object) -> RunModel:
    """A run over data of ``task`` whose model answers ``answers`` (an autoencoder's
    reconstruction), by default the task itself."""
    manifest = manifest_of(task, **parts)  # type: ignore[arg-type]
    return RunModel(Path("runs/x/1"), RunInfo(task=answers or task), manifest, Path("data/x"))


def test_each_task_gets_its_baselines() -> None:
    train = {"train": {"num_examples": 4, "shards": [], "class_counts": [3, 1]}}
    target = {"classes": ["a", "b"]}
    small = {"kind": "image", "shape": [8, 8, 1], "dtype": "uint8"}  # digits: cheap to fit
    images = _run("binary", features=small, target=target, splits=train)
    assert plan_baselines(images).names == ["prior", "gbm"]
    assert plan_baselines(images, gbm=False).names == ["prior"]
    large = {"kind": "image", "shape": [28, 28, 1], "dtype": "uint8"}  # MNIST: minutes
    plan = plan_baselines(_run("binary", features=large, target=target, splits=train))
    assert plan.names == ["prior"] and "too large" in plan.notes[0]
    table = {"kind": "table", "columns": [{"name": "x", "type": "numeric", "dtype": "float32"}]}
    numeric = {
        "column": "x",
        "missing": "mean",
        "outliers": "none",
        "scaling": "none",
        **dict.fromkeys(["fill", "low", "high", "shift", "mean"], 0.0),
        "variance": 1.0,
        "log": False,
        "train_missing": 0,
    }
    regression = _run(
        "regression", features=table, target={"mean": [2.0]}, preprocessing={"numeric": [numeric]}
    )
    assert plan_baselines(regression).names == ["mean", "gbm"]
    autoencoder = plan_baselines(_run("binary", "reconstruction", target=target, splits=train))
    assert autoencoder.names == [] and "no baselines for reconstruction" in autoencoder.notes[0]


def test_forecasting_gets_a_seasonal_naive_only_with_a_season_within_the_lookback() -> None:
    run = _run(
        "forecasting",
        features={"kind": "sequence", "shape": [6, 1], "columns": ["y0"]},
        target={"mean": [0.0], "horizon": 2, "lookback": 6},
    )
    assert plan_baselines(run).names == ["naive"]
    assert "no season" in plan_baselines(run).notes[0]
    layout = {"steps": 30, "split_steps": {}, "windows": {}, "start": "a", "end": "b"}
    for season, names in ((4, ["naive", "seasonal_naive"]), (12, ["naive"])):
        series = SeriesLayout(**layout, season=season)  # type: ignore[arg-type]
        seasonal = RunModel(
            run.run_dir, run.info, run.manifest.model_copy(update={"series": series}), None
        )
        plan = plan_baselines(seasonal)
        assert plan.names == names
        if season == 12:
            assert "shorter than the season" in plan.notes[0]
    series = SeriesLayout(**layout, season=4)  # type: ignore[arg-type]
    seasonal = RunModel(
        run.run_dir, run.info, run.manifest.model_copy(update={"series": series}), None
    )
    x, y = _windows(np.tile([1.0, 5.0, 2.0, 8.0], 5), lookback=6, horizon=2)
    found = baseline_outputs(seasonal, x, y, plan_baselines(seasonal), lambda _: None)
    assert np.array_equal(found.outputs["seasonal_naive"], y)
    assert found.outputs["naive"].shape == y.shape


def test_gates_name_a_baseline_value() -> None:
    gate = parse_gate("rmse <= baseline.gbm.rmse")
    assert gate.against is not None and (gate.against.name, gate.against.metric) == ("gbm", "rmse")
    assert gate.bound != gate.bound  # NaN until evaluate fills it in
    metrics = {"rmse": 2.0, "accuracy": 0.8}
    baselines = {"gbm": {"rmse": 3.0}, "prior": {"accuracy": 0.8, "roc_auc": None}}
    texts = [
        "rmse<=baseline.gbm.rmse",
        "accuracy>baseline.prior.accuracy",
        "accuracy>=baseline.prior.accuracy",
        "accuracy>=baseline.prior.roc_auc",  # undefined: fails
    ]
    results = apply_gates([parse_gate(t) for t in texts], metrics, (), baselines)
    assert [r.passed for r in results] == [True, False, True, False]
    assert results[0].gate.bound == 3.0
    assert results[0].to_json()["against"] == "baseline.gbm.rmse"
    assert results[3].to_json()["bound"] is None
    for text in ("rmse<=baseline.gbm", "rmse<=baselines.gbm.rmse", "rmse<=baseline..rmse"):
        with pytest.raises(UsageError, match="does not parse"):
            parse_gate(text)


def test_a_gate_naming_an_absent_baseline_or_metric_is_refused() -> None:
    known = [m.name for m in task_metrics("multiclass", num_classes=3)]
    check_gate_names([parse_gate("accuracy>baseline.prior.accuracy")], known, ["a"], ["prior"])
    with pytest.raises(UsageError, match="Baselines available here: prior, gbm"):
        check_gate_names(
            [parse_gate("accuracy>baseline.mean.accuracy")], known, [], ["prior", "gbm"]
        )
    with pytest.raises(UsageError, match="no baselines at all"):
        check_gate_names([parse_gate("accuracy>baseline.prior.accuracy")], known, [], [])
    with pytest.raises(UsageError, match="Did you mean `accuracy`"):
        check_gate_names([parse_gate("accuracy>baseline.prior.acuracy")], known, [], ["prior"])


def test_losing_to_a_trivial_baseline_is_a_warning_and_to_gbm_a_note() -> None:
    baselines = {"prior": {"accuracy": 0.7}, "gbm": {"accuracy": 0.9}}
    worse = losing_warnings("binary", {"accuracy": 0.6}, baselines, ("prior",), "the test split")
    assert len(worse) == 1 and "worse than the class prior" in worse[0]
    assert "on the test split" in worse[0]
    assert "accuracy 0.6000 against 0.7000" in worse[0]
    tie = losing_warnings("binary", {"accuracy": 0.7}, baselines, ("prior",), "x")
    assert "no better than" in tie[0]
    assert losing_warnings("binary", {"accuracy": 0.8}, baselines, ("prior",), "x") == []
    assert "gradient boosting" in losing_notes("binary", {"accuracy": 0.8}, baselines)[0]
    # lower is better for errors; forecasts are judged by MAE
    series = {"naive": {"mae": 1.0, "rmse": 9.0}, "seasonal_naive": {"mae": 3.0}}
    found = losing_warnings("forecasting", {"mae": 2.0, "rmse": 1.0}, series, ("naive",), "x")
    assert len(found) == 1 and "naive forecast" in found[0]
    assert (
        losing_warnings("regression", {"rmse": 1.0}, {"mean": {"rmse": 2.0}}, ("mean",), "x") == []
    )
    assert losing_warnings("reconstruction", {}, {}, (), "x") == []


def test_a_tiny_split_is_warned_about() -> None:
    assert tiny_split_warning(MIN_EXAMPLES, "the test split") is None
    found = tiny_split_warning(18, "the test split")
    assert found is not None and "Only 18 examples in the test split" in found
    assert "--folds" in found


def test_baseline_outputs_leave_out_what_cannot_be_made() -> None:
    run = _run(
        "forecasting",
        features={"kind": "sequence", "shape": [3, 2], "columns": ["a", "b"]},
        target={"mean": [0.0], "columns": ["b"], "horizon": 1, "lookback": 3},
    )
    plan = BaselinePlan(["naive"])
    found = baseline_outputs(run, {"not": "windows"}, np.zeros((2, 1, 1)), plan, lambda _: None)
    assert found.outputs == {} and "not shaped as prepared" in found.notes[0]
