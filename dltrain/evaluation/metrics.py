"""Metrics from targets and model outputs, by task (NumPy only, no TensorFlow).

Every headline metric accepts per-example weights. A bootstrap resample is then just a vector of
counts (how often each example was drawn), so confidence intervals cost one pass over arrays
prepared once, rather than re-sorting and copying the data for every resample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dltrain.evaluation.catalog import top_k_name

EPSILON = 1e-7  # the clip Keras's cross-entropy uses, so our loss matches model.evaluate
Metrics = dict[str, float | None]


class Scorer(Protocol):
    """What evaluate needs from a task's metrics: headline numbers under weights, and a report."""

    num_examples: int

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """The headline metrics, with each example counted ``weights[i]`` times."""
        ...

    def report(self) -> dict[str, Any]:
        """Headline metrics plus the task's detail (per class, per target, …)."""
        ...


def _unit_weights(n: int, weights: np.ndarray | None) -> np.ndarray:
    return np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, np.float64)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # An empty denominator gives 0 (scikit-learn's zero_division=0), not NaN.
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(
        numerator, denominator, out=np.zeros_like(numerator), where=np.asarray(denominator) > 0
    )


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def weighted_quantile(values: np.ndarray, weights: np.ndarray | None, q: float) -> float:
    """The smallest value whose weighted cumulative share reaches ``q`` (NumPy's inverted_cdf)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(_unit_weights(len(values), weights)[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(index, len(values) - 1)])


# --- classification ---------------------------------------------------------------------------


def confusion_matrix(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Counts (weighted when ``sample_weight`` is given); row = true class, column = predicted."""
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    counts = np.bincount(flat, weights=sample_weight, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


class RankedScores:
    """One class's scores sorted once, for weighted ROC-AUC and average precision in O(n).

    Both areas depend only on how positives and negatives interleave along the sorted scores,
    so each resample only re-counts the weight at each distinct score.
    """

    def __init__(self, scores: np.ndarray, positive: np.ndarray) -> None:
        self.thresholds, self.inverse = np.unique(scores, return_inverse=True)  # ascending
        self.positive = positive.astype(np.float64)

    def _weights_by_score(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = len(self.thresholds)
        pos = np.bincount(self.inverse, weights=weights * self.positive, minlength=size)
        neg = np.bincount(self.inverse, weights=weights * (1.0 - self.positive), minlength=size)
        return pos, neg

    def roc_auc(self, weights: np.ndarray) -> float | None:
        """P(score of a positive > score of a negative), ties counting half; None if undefined."""
        pos, neg = self._weights_by_score(weights)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos <= 0 or total_neg <= 0:
            return None
        negatives_below = np.cumsum(neg) - neg
        return float((pos * (negatives_below + 0.5 * neg)).sum() / (total_pos * total_neg))

    def average_precision(self, weights: np.ndarray) -> float | None:
        """Sum over thresholds of precision × the recall gained there (no interpolation)."""
        pos, neg = self._weights_by_score(weights)
        total_pos = pos.sum()
        if total_pos <= 0:
            return None
        true_pos = np.cumsum(pos[::-1])  # predicted positive = score >= threshold, high first
        false_pos = np.cumsum(neg[::-1])
        precision = _divide(true_pos, true_pos + false_pos)
        recall_gain = pos[::-1] / total_pos
        return float((precision * recall_gain).sum())


def positive_scores(probabilities: np.ndarray) -> np.ndarray:
    """P(positive class) of a binary model: one sigmoid column, or the second of two softmax."""
    return probabilities[:, -1]


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Model outputs as an (n, classes) probability matrix; a single sigmoid column becomes two."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def predicted_classes(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The likeliest class; for a binary model, positive when P(positive) >= threshold (0.5)."""
    if probabilities.shape[1] == 2:
        cut = 0.5 if threshold is None else threshold
        return (positive_scores(probabilities) >= cut).astype(np.int64)
    return np.asarray(probabilities.argmax(axis=1), dtype=np.int64)


def calibration_bin_index(confidence: np.ndarray, num_bins: int) -> np.ndarray:
    """Equal-width bins ((b-1)/B, b/B] over [0, 1], as in Guo et al. 2017."""
    index = np.ceil(confidence * num_bins).astype(np.int64) - 1
    return np.clip(index, 0, num_bins - 1)


class ClassificationScorer:
    """Classification metrics of predicted probabilities against integer labels.

    Args:
        y_true: integer labels, shape (n,).
        probabilities: shape (n, classes); a binary model's single sigmoid column also works.
        classes: class names in label order.
        threshold: binary only: predict the positive class when its probability is at least
            this (default 0.5).
        top_k: k of top-k accuracy (reported when there are more than k classes).
        calibration_bins: number of equal-width bins of the expected calibration error.
    """

    def __init__(
        self,
        y_true: np.ndarray,
        probabilities: np.ndarray,
        classes: list[str],
        *,
        threshold: float | None = None,
        top_k: int = 3,
        calibration_bins: int = 15,
    ) -> None:
        self.y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
        self.probabilities = class_probabilities(probabilities)
        self.classes = list(classes)
        self.num_classes = len(classes)
        self.num_examples = len(self.y_true)
        self.binary = self.num_classes == 2
        self.threshold = threshold if self.binary else None
        self.top_k = top_k
        self.calibration_bins = calibration_bins
        self.y_pred = predicted_classes(self.probabilities, self.threshold)
        rows = np.arange(self.num_examples)
        picked = self.probabilities[rows, self.y_true]
        self._log_terms = -np.log(np.clip(picked, EPSILON, 1.0 - EPSILON))
        confidence = self.probabilities.max(axis=1)
        self._bin = calibration_bin_index(confidence, calibration_bins)
        self._confidence = confidence
        self._argmax_correct = (self.probabilities.argmax(axis=1) == self.y_true).astype(float)
        if self.num_classes > top_k:
            # stable sort on the negated scores: among equal scores the lower label ranks first
            order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :top_k]
            self._top_k_hits: np.ndarray | None = (order == self.y_true[:, None]).any(axis=1)
        else:
            self._top_k_hits = None
        ranked = [1] if self.binary else range(self.num_classes)
        self._ranked = {c: RankedScores(self.probabilities[:, c], self.y_true == c) for c in ranked}

    def _per_class(
        self, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        counts = confusion_matrix(self.y_true, self.y_pred, self.num_classes, weights)
        true_positive = np.diag(counts)
        support = counts.sum(axis=1)
        precision = _divide(true_positive, counts.sum(axis=0))
        recall = _divide(true_positive, support)
        f1 = _divide(2 * precision * recall, precision + recall)
        return counts, precision, recall, f1, support

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """Every headline classification metric, with example i counted ``weights[i]`` times."""
        w = _unit_weights(self.num_examples, weights)
        total = w.sum()
        counts, precision, recall, f1, support = self._per_class(w)
        share = support / max(total, 1e-12)
        loss = float(w @ self._log_terms / total)
        metrics: Metrics = {"loss": loss, "log_loss": loss}
        metrics["accuracy"] = float(np.trace(counts) / total)
        metrics["balanced_accuracy"] = float(recall[support > 0].mean()) if support.any() else None
        if self.binary:
            metrics.update(
                precision=float(precision[1]),
                recall=float(recall[1]),
                f1=float(f1[1]),
                specificity=float(recall[0]),
            )
        metrics.update(
            precision_macro=float(precision.mean()),
            recall_macro=float(recall.mean()),
            f1_macro=float(f1.mean()),
            precision_weighted=float(precision @ share),
            recall_weighted=float(recall @ share),
            f1_weighted=float(f1 @ share),
        )
        if self.binary:
            metrics["roc_auc"] = self._ranked[1].roc_auc(w)
            metrics["pr_auc"] = self._ranked[1].average_precision(w)
        else:
            metrics["roc_auc"] = _mean_defined([r.roc_auc(w) for r in self._ranked.values()])
            metrics["pr_auc"] = _mean_defined(
                [r.average_precision(w) for r in self._ranked.values()]
            )
        metrics["expected_calibration_error"] = self._ece(w)
        if self._top_k_hits is not None:
            metrics[top_k_name(self.top_k)] = float(w @ self._top_k_hits / total)
        return metrics

    def _ece(self, w: np.ndarray) -> float:
        bins = self.calibration_bins
        correct = np.bincount(self._bin, weights=w * self._argmax_correct, minlength=bins)
        confident = np.bincount(self._bin, weights=w * self._confidence, minlength=bins)
        return float(np.abs(correct - confident).sum() / w.sum())

    def calibration(self) -> list[dict[str, float | int]]:
        """Per non-empty bin: its range, examples, mean confidence and accuracy."""
        rows = []
        for b in range(self.calibration_bins):
            members = self._bin == b
            if members.any():
                rows.append(
                    {
                        "low": b / self.calibration_bins,
                        "high": (b + 1) / self.calibration_bins,
                        "count": int(members.sum()),
                        "confidence": float(self._confidence[members].mean()),
                        "accuracy": float(self._argmax_correct[members].mean()),
                    }
                )
        return rows

    def report(self) -> dict[str, Any]:
        """Headline metrics, per-class table, confusion matrix (counts and row-normalised)."""
        w = _unit_weights(self.num_examples, None)
        counts, precision, recall, f1, support = self._per_class(w)
        per_class = []
        for i, name in enumerate(self.classes):
            ranked = self._ranked.get(i) or RankedScores(self.probabilities[:, i], self.y_true == i)
            per_class.append(
                {
                    "class": name,
                    "precision": float(precision[i]),
                    "recall": float(recall[i]),
                    "f1": float(f1[i]),
                    "support": int(support[i]),
                    "roc_auc": ranked.roc_auc(w),
                    "pr_auc": ranked.average_precision(w),
                }
            )
        integer_counts = counts.round().astype(np.int64)
        normalized = _divide(counts, counts.sum(axis=1, keepdims=True))
        return {
            "metrics": self.headline(),
            "per_class": per_class,
            "confusion_matrix": {
                "labels": list(self.classes),
                "counts": integer_counts.tolist(),
                "normalized": [[round(float(v), 6) for v in row] for row in normalized],
            },
            "calibration": {"bins": self.calibration_bins, "table": self.calibration()},
        }


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str], **options: Any
) -> dict[str, Any]:
    """The classification report of ``ClassificationScorer`` in one call (options as there)."""
    return ClassificationScorer(y_true, probabilities, classes, **options).report()


# --- regression and forecasting ---------------------------------------------------------------


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
        relative = _divide(np.abs(error), np.abs(self.y_true))
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
        columns = self._columns(_unit_weights(self.num_examples, weights))
        return {name: _mean_defined(values) for name, values in columns.items()}

    def report(self) -> dict[str, Any]:
        """Headline metrics, plus one row per target column when there are several."""
        document: dict[str, Any] = {"metrics": self.headline()}
        if len(self.names) > 1:
            columns = self._columns(_unit_weights(self.num_examples, None))
            document["per_target"] = [
                {"target": name, **{m: values[j] for m, values in columns.items()}}
                for j, name in enumerate(self.names)
            ]
        return document


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

    def report(self) -> dict[str, Any]:
        """Headline metrics plus MAE and RMSE at each step ahead."""
        error = (self._flat.y_pred - self._flat.y_true).reshape(
            self.num_examples, self.horizon, self.width
        )
        per_step = [
            {
                "step": step + 1,
                "mae": float(np.abs(error[:, step]).mean()),
                "rmse": float(np.sqrt((error[:, step] ** 2).mean())),
            }
            for step in range(self.horizon)
        ]
        return {"metrics": self.headline(), "per_step": per_step}


# --- autoencoders (task: reconstruction) -------------------------------------------------------


def reconstruction_errors(inputs: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Mean squared error of each example's reconstruction over all its features."""
    n = len(inputs)
    difference = np.asarray(reconstructions, np.float64).reshape(n, -1) - np.asarray(
        inputs, np.float64
    ).reshape(n, -1)
    return np.asarray((difference**2).mean(axis=1))


def anomaly_scores(inputs: Any, outputs: np.ndarray) -> np.ndarray:
    """Per-example reconstruction errors from an autoencoder's outputs.

    dltrain's autoencoders output the error itself (one number per example); a model that
    outputs the reconstruction is compared with its raw inputs instead.
    """
    n = len(outputs)
    flat = np.asarray(outputs, np.float64).reshape(n, -1)
    if flat.shape[1] == 1:
        return flat[:, 0]
    return reconstruction_errors(inputs, outputs)


class AutoencoderScorer:
    """The distribution of reconstruction errors and the share above the anomaly threshold.

    Args:
        errors: per-example reconstruction error, shape (n,).
        threshold: errors above it count as anomalies (usually a percentile of the validation
            split's errors, see ``anomaly_threshold``).
    """

    def __init__(self, errors: np.ndarray, threshold: float) -> None:
        self.errors = np.asarray(errors, dtype=np.float64).reshape(-1)
        self.num_examples = len(self.errors)
        self.threshold = float(threshold)

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """Mean, median, 95th/99th percentile and maximum error; threshold and anomaly rate."""
        w = _unit_weights(self.num_examples, weights)
        drawn = self.errors[w > 0]
        return {
            "reconstruction_error_mean": float(w @ self.errors / w.sum()),
            "reconstruction_error_median": weighted_quantile(self.errors, w, 0.5),
            "reconstruction_error_p95": weighted_quantile(self.errors, w, 0.95),
            "reconstruction_error_p99": weighted_quantile(self.errors, w, 0.99),
            "reconstruction_error_max": float(drawn.max()),
            "anomaly_threshold": self.threshold,
            "anomaly_rate": float(w @ (self.errors > self.threshold) / w.sum()),
        }

    def report(self) -> dict[str, Any]:
        """Headline metrics plus a histogram of the errors."""
        counts, edges = np.histogram(self.errors, bins=20)
        return {
            "metrics": self.headline(),
            "reconstruction_error": {
                "histogram": {"counts": counts.tolist(), "edges": edges.tolist()}
            },
        }


def anomaly_threshold(errors: np.ndarray, percentile: float) -> float:
    """The ``percentile`` (0-100) of ``errors``: reconstruction errors above it are anomalies."""
    return weighted_quantile(np.asarray(errors, np.float64), None, percentile / 100.0)


# --- confidence intervals ---------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap_intervals(
    scorer: Scorer, resamples: int, seed: int, confidence: float = 0.95
) -> dict[str, Interval]:
    """Percentile bootstrap intervals of every headline metric.

    Each resample draws n examples with replacement; its counts are the weights of one
    ``scorer.headline`` call. Metrics undefined in a resample (AUC with one class drawn) skip it.

    Args:
        scorer: the task's scorer.
        resamples: number of bootstrap resamples (1,000 gives stable 95 % bounds).
        seed: fixes the resamples, so the same run gives the same interval.
        confidence: the interval's coverage.
    """
    rng = np.random.default_rng(seed)
    n = scorer.num_examples
    drawn: dict[str, list[float]] = {}
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        for name, value in scorer.headline(counts).items():
            if value is not None and np.isfinite(value):
                drawn.setdefault(name, []).append(value)
    tail = 100 * (1 - confidence) / 2
    intervals = {}
    for name, values in drawn.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        intervals[name] = Interval(float(low), float(high))
    return intervals
