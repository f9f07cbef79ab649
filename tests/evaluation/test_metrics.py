"""Every metric against an independent computation on fixed arrays.

The oracle is scikit-learn where our code is NumPy (confusion-based metrics, log loss, weighted
AUC/AP), and a direct computation (pairwise comparison, explicit loops) where our code leans on
the same ideas as scikit-learn, so a test never checks a function against itself.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn import metrics as sk

from dltrain.evaluation.catalog import task_metrics
from dltrain.evaluation.metrics import (
    AutoencoderScorer,
    ClassificationScorer,
    ForecastingScorer,
    GenerationScorer,
    RankedScores,
    RegressionScorer,
    anomaly_threshold,
    bootstrap_intervals,
    classification_metrics,
    reconstruction_errors,
    weighted_quantile,
)

CLASSES = ["a", "b", "c", "d"]
LABELS = [0, 1, 2, 3]


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, size=200)
    y_true[:3] = 0
    logits = rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[y_true]
    logits[:, 3] -= 10  # class "d" is never predicted: precision must be 0, not NaN
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probabilities


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    y_true = rng.integers(0, 2, size=300)
    p = 1 / (1 + np.exp(-(rng.normal(size=300) + 1.5 * (2 * y_true - 1))))
    p[:20] = np.round(p[:20], 1)  # ties, which ROC-AUC and AP must count correctly
    return y_true, np.stack([1 - p, p], axis=1)


def test_multiclass_against_scikit_learn(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, probabilities = predictions
    y_pred = probabilities.argmax(axis=1)
    result = classification_metrics(y_true, probabilities, CLASSES, top_k=2).to_json()
    m = result["metrics"]
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    assert m["loss"] == pytest.approx(sk.log_loss(y_true, probabilities, labels=LABELS), rel=1e-6)
    assert m["log_loss"] == m["loss"]
    assert m["top_2_accuracy"] == pytest.approx(
        sk.top_k_accuracy_score(y_true, probabilities, k=2, labels=LABELS)
    )
    assert m["roc_auc"] == pytest.approx(
        sk.roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro")
    )
    assert m["pr_auc"] == pytest.approx(
        np.mean([sk.average_precision_score(y_true == c, probabilities[:, c]) for c in LABELS])
    )
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(
            y_true, y_pred, average=average, labels=LABELS, zero_division=0
        )
        assert m[f"precision_{average}"] == pytest.approx(p)
        assert m[f"recall_{average}"] == pytest.approx(r)
        assert m[f"f1_{average}"] == pytest.approx(f)
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    for i, row in enumerate(result["per_class"]):
        assert row["class"] == CLASSES[i]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i])
        )
        assert row["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true == i, probabilities[:, i]))
    counts = sk.confusion_matrix(y_true, y_pred, labels=LABELS)
    assert result["confusion_matrix"]["counts"] == counts.tolist()
    assert result["confusion_matrix"]["normalized"] == pytest.approx(
        sk.confusion_matrix(y_true, y_pred, labels=LABELS, normalize="true"), abs=1e-6
    )
    assert result["per_class"][3]["precision"] == 0.0
    assert "precision" not in m  # positive-class metrics are for binary models only


def test_binary_against_scikit_learn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, probabilities = binary
    p = probabilities[:, 1]
    for threshold in (None, 0.3):
        cut = 0.5 if threshold is None else threshold
        y_pred = (p >= cut).astype(int)
        m = ClassificationScorer(
            y_true, probabilities, ["no", "yes"], threshold=threshold
        ).headline()
        assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
        assert m["precision"] == pytest.approx(sk.precision_score(y_true, y_pred))
        assert m["recall"] == pytest.approx(sk.recall_score(y_true, y_pred))
        assert m["f1"] == pytest.approx(sk.f1_score(y_true, y_pred))
        assert m["specificity"] == pytest.approx(sk.recall_score(y_true, y_pred, pos_label=0))
        assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true, p))
        assert m["pr_auc"] == pytest.approx(sk.average_precision_score(y_true, p))
        assert m["loss"] == pytest.approx(sk.log_loss(y_true, p), rel=1e-6)
    # a sigmoid model's single column means the same as the two softmax columns
    single = ClassificationScorer(y_true, p[:, None], ["no", "yes"]).headline()
    assert single == pytest.approx(
        ClassificationScorer(y_true, probabilities, ["no", "yes"]).headline()
    )


def test_weighted_metrics_equal_repeating_examples(binary: tuple[np.ndarray, np.ndarray]) -> None:
    """A bootstrap resample's counts as weights must give what the repeated examples give."""
    y_true, probabilities = binary
    counts = np.random.default_rng(5).integers(0, 4, size=len(y_true)).astype(float)
    weighted = ClassificationScorer(y_true, probabilities, ["no", "yes"]).headline(counts)
    rows = np.repeat(np.arange(len(y_true)), counts.astype(int))
    repeated = ClassificationScorer(y_true[rows], probabilities[rows], ["no", "yes"]).headline()
    assert weighted == pytest.approx(repeated)
    p = probabilities[:, 1]
    assert weighted["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true, p, sample_weight=counts))
    assert weighted["pr_auc"] == pytest.approx(
        sk.average_precision_score(y_true, p, sample_weight=counts)
    )


def test_ranked_scores_auc_is_the_pairwise_probability() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2])
    positive = np.array([0, 1, 0, 1, 0, 1, 1], dtype=bool)
    pairs = [
        1.0 if s > t else 0.5 if s == t else 0.0
        for s, t in itertools.product(scores[positive], scores[~positive])
    ]
    ranked = RankedScores(scores, positive)
    assert ranked.roc_auc(np.ones(7)) == pytest.approx(np.mean(pairs))
    # AP by hand: precision at each positive, thresholds descending, ties taken together
    # 0.9 (+): P=1/1; 0.8 (+): 2/2; 0.4 (+,-): 3/4; 0.35 (-); 0.2 (+): 4/6
    assert ranked.average_precision(np.ones(7)) == pytest.approx((1 + 1 + 0.75 + 4 / 6) / 4)
    assert RankedScores(scores, np.zeros(7, bool)).roc_auc(np.ones(7)) is None


def test_expected_calibration_error_by_hand() -> None:
    # confidence (max prob) and correctness per example; 2 bins: (0, .5] and (.5, 1]
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]])
    y_true = np.array([0, 1, 1, 1, 0])
    scorer = ClassificationScorer(y_true, probabilities, ["x", "y"], calibration_bins=2)
    # bin 2 holds .9 (right), .8 (wrong), .7 (right), .6 (wrong): |2/4 - 3.0/4| = 0.25, weight 4/5
    # bin 1 holds .5 (argmax 0, right): |1 - .5| = .5, weight 1/5
    assert scorer.headline()["expected_calibration_error"] == pytest.approx(0.8 * 0.25 + 0.2 * 0.5)
    table = [row.to_json() for row in scorer.calibration()]
    assert [row["count"] for row in table] == [1, 4]


def test_expected_calibration_error_against_a_loop(
    predictions: tuple[np.ndarray, np.ndarray],
) -> None:
    y_true, probabilities = predictions
    bins = 10
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if low < c <= high or (b == 0 and c == 0)]
        if members:
            accuracy = np.mean([predicted[i] == y_true[i] for i in members])
            mean_confidence = np.mean([confidence[i] for i in members])
            total += len(members) / len(y_true) * abs(accuracy - mean_confidence)
    scorer = ClassificationScorer(y_true, probabilities, CLASSES, calibration_bins=bins)
    assert scorer.headline()["expected_calibration_error"] == pytest.approx(total)


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 2, 1])
    result = classification_metrics(y, np.eye(3)[y], ["x", "y", "z"]).to_json()
    assert result["metrics"]["accuracy"] == 1.0 and result["metrics"]["f1_macro"] == 1.0
    assert result["metrics"]["loss"] == pytest.approx(-np.log(1 - 1e-7))
    assert result["metrics"]["expected_calibration_error"] == pytest.approx(0.0)
    assert result["metrics"]["roc_auc"] == 1.0


def test_regression_against_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(50, 10, size=(120, 2))
    y[5, 0] = 0.0  # MAPE leaves rows with a zero target out
    pred = y + rng.normal(0, 3, size=y.shape)
    m = RegressionScorer(y, pred, ["price", "rent"]).headline()
    assert m["mse"] == pytest.approx(sk.mean_squared_error(y, pred))
    assert m["rmse"] == pytest.approx(sk.root_mean_squared_error(y, pred))
    assert m["mae"] == pytest.approx(sk.mean_absolute_error(y, pred))
    assert m["r2"] == pytest.approx(sk.r2_score(y, pred))
    keep = y[:, 0] != 0
    mape = [
        sk.mean_absolute_percentage_error(y[keep, 0], pred[keep, 0]),
        sk.mean_absolute_percentage_error(y[:, 1], pred[:, 1]),
    ]
    assert m["mape"] == pytest.approx(100 * np.mean(mape))
    report = RegressionScorer(y, pred, ["price", "rent"]).report().to_json()
    assert [row["target"] for row in report["per_target"]] == ["price", "rent"]
    assert report["per_target"][1]["mae"] == pytest.approx(
        sk.mean_absolute_error(y[:, 1], pred[:, 1])
    )
    weights = rng.integers(0, 3, size=120).astype(float)
    weighted = RegressionScorer(y[:, 1], pred[:, 1]).headline(weights)
    assert weighted["r2"] == pytest.approx(sk.r2_score(y[:, 1], pred[:, 1], sample_weight=weights))
    assert weighted["mse"] == pytest.approx(
        sk.mean_squared_error(y[:, 1], pred[:, 1], sample_weight=weights)
    )


def test_forecasting_ratio_to_the_naive_forecast() -> None:
    rng = np.random.default_rng(4)
    series = np.cumsum(rng.normal(size=400))
    lookback, horizon = 12, 3
    starts = np.arange(0, 400 - lookback - horizon)
    x = np.stack([series[s : s + lookback] for s in starts])
    y = np.stack([series[s + lookback : s + lookback + horizon] for s in starts])
    pred = y + rng.normal(0, 0.5, size=y.shape)
    scorer = ForecastingScorer(y, pred, last_observed=x[:, -1])
    m = scorer.headline()
    naive = np.repeat(x[:, -1:], horizon, axis=1)
    assert m["mae"] == pytest.approx(sk.mean_absolute_error(y.ravel(), pred.ravel()))
    assert m["rmse"] == pytest.approx(sk.root_mean_squared_error(y.ravel(), pred.ravel()))
    assert m["mae_ratio_to_naive"] == pytest.approx(
        sk.mean_absolute_error(y.ravel(), pred.ravel())
        / sk.mean_absolute_error(y.ravel(), naive.ravel())
    )
    assert m["rmse_ratio_to_naive"] == pytest.approx(
        sk.root_mean_squared_error(y.ravel(), pred.ravel())
        / sk.root_mean_squared_error(y.ravel(), naive.ravel())
    )
    steps = scorer.report().to_json()["per_step"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert steps[2]["mae"] == pytest.approx(sk.mean_absolute_error(y[:, 2], pred[:, 2]))
    assert ForecastingScorer(y, pred).headline()["mae_ratio_to_naive"] is None


def test_autoencoder_errors_and_threshold() -> None:
    rng = np.random.default_rng(6)
    inputs = rng.normal(size=(500, 4, 3))
    recon = inputs + rng.normal(0, 0.1, size=inputs.shape)
    recon[:5] += 3  # five anomalies
    errors = reconstruction_errors(inputs, recon)
    assert errors[7] == pytest.approx(np.mean((recon[7] - inputs[7]) ** 2))
    threshold = anomaly_threshold(errors[5:], 99)
    assert threshold == pytest.approx(np.percentile(errors[5:], 99, method="inverted_cdf"))
    m = AutoencoderScorer(errors, threshold).headline()
    assert m["reconstruction_error_mean"] == pytest.approx(errors.mean())
    assert m["reconstruction_error_median"] == pytest.approx(
        np.percentile(errors, 50, method="inverted_cdf")
    )
    assert m["reconstruction_error_p95"] == pytest.approx(
        np.percentile(errors, 95, method="inverted_cdf")
    )
    assert m["reconstruction_error_max"] == pytest.approx(errors.max())
    assert m["anomaly_rate"] == pytest.approx(np.mean(errors > threshold))
    assert m["anomaly_rate"] >= 5 / 500


def test_weighted_quantile_matches_numpy() -> None:
    values = np.random.default_rng(8).normal(size=101)
    for q in (0.0, 0.1, 0.5, 0.95, 1.0):
        assert weighted_quantile(values, None, q) == pytest.approx(
            np.quantile(values, q, method="inverted_cdf")
        )


def test_bootstrap_intervals_cover_the_estimate_and_are_reproducible(
    binary: tuple[np.ndarray, np.ndarray],
) -> None:
    y_true, probabilities = binary
    scorer = ClassificationScorer(y_true, probabilities, ["no", "yes"])
    intervals = bootstrap_intervals(scorer, resamples=300, seed=1)
    point = scorer.headline()
    for name in ("accuracy", "roc_auc", "f1", "log_loss"):
        assert intervals[name].low <= point[name] <= intervals[name].high, name
    # the accuracy interval's width is close to the normal approximation's 2 × 1.96 × SE
    se = np.sqrt(point["accuracy"] * (1 - point["accuracy"]) / len(y_true))
    width = intervals["accuracy"].high - intervals["accuracy"].low
    assert 0.7 * 3.92 * se < width < 1.3 * 3.92 * se
    assert bootstrap_intervals(scorer, resamples=300, seed=1) == intervals
    assert bootstrap_intervals(scorer, resamples=300, seed=2) != intervals


def test_generation_scores_by_hand_and_under_weights() -> None:
    real = np.array([0.9, 0.6, 0.4, 0.5])  # 0.5 counts as "real": three of four called real
    fake = np.array([0.1, 0.7, 0.2, 0.3])  # three of four called generated
    scorer = GenerationScorer(real, fake)
    assert scorer.headline() == pytest.approx(
        {
            "discriminator_accuracy": 6 / 8,
            "real_accuracy": 3 / 4,
            "fake_accuracy": 3 / 4,
            "real_score_mean": 0.6,
            "fake_score_mean": 0.325,
        }
    )
    # weights count a pair (real i, generated i) that many times, like repeating it
    weights = np.array([2.0, 0.0, 1.0, 1.0])
    repeated = GenerationScorer(np.repeat(real, [2, 0, 1, 1]), np.repeat(fake, [2, 0, 1, 1]))
    assert scorer.headline(weights) == pytest.approx(repeated.headline())
    assert [m.name for m in task_metrics("generation")] == list(scorer.report().metrics)
    with pytest.raises(ValueError, match="as many generated images as real ones"):
        GenerationScorer(real, fake[:3])
