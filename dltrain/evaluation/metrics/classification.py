"""Classification metrics of predicted probabilities against integer labels (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltrain.evaluation.catalog import top_k_name
from dltrain.evaluation.metrics.common import divide, mean_defined, unit_weights
from dltrain.evaluation.metrics.scores import (
    Calibration,
    CalibrationBin,
    ClassScores,
    ConfusionMatrix,
    Metrics,
    ScoreReport,
)

EPSILON = 1e-7  # the clip Keras's cross-entropy uses, so our loss matches model.evaluate


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
        precision = divide(true_pos, true_pos + false_pos)
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
        precision = divide(true_positive, counts.sum(axis=0))
        recall = divide(true_positive, support)
        f1 = divide(2 * precision * recall, precision + recall)
        return counts, precision, recall, f1, support

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """Every headline classification metric, with example i counted ``weights[i]`` times."""
        w = unit_weights(self.num_examples, weights)
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
            metrics["roc_auc"] = mean_defined([r.roc_auc(w) for r in self._ranked.values()])
            metrics["pr_auc"] = mean_defined(
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

    def calibration(self) -> list[CalibrationBin]:
        """Per non-empty bin: its range, examples, mean confidence and accuracy."""
        rows = []
        for b in range(self.calibration_bins):
            members = self._bin == b
            if members.any():
                rows.append(
                    CalibrationBin(
                        low=b / self.calibration_bins,
                        high=(b + 1) / self.calibration_bins,
                        count=int(members.sum()),
                        confidence=float(self._confidence[members].mean()),
                        accuracy=float(self._argmax_correct[members].mean()),
                    )
                )
        return rows

    def report(self) -> ScoreReport:
        """Headline metrics, per-class table, confusion matrix (counts and row-normalised)."""
        w = unit_weights(self.num_examples, None)
        counts, precision, recall, f1, support = self._per_class(w)
        per_class = []
        for i, name in enumerate(self.classes):
            ranked = self._ranked.get(i) or RankedScores(self.probabilities[:, i], self.y_true == i)
            per_class.append(
                ClassScores(
                    name=name,
                    precision=float(precision[i]),
                    recall=float(recall[i]),
                    f1=float(f1[i]),
                    support=int(support[i]),
                    roc_auc=ranked.roc_auc(w),
                    pr_auc=ranked.average_precision(w),
                )
            )
        normalized = divide(counts, counts.sum(axis=1, keepdims=True))
        return ScoreReport(
            metrics=self.headline(),
            per_class=per_class,
            confusion_matrix=ConfusionMatrix(
                labels=list(self.classes),
                counts=counts.round().astype(np.int64).tolist(),
                normalized=[[round(float(v), 6) for v in row] for row in normalized],
            ),
            calibration=Calibration(self.calibration_bins, self.calibration()),
        )


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str], **options: Any
) -> ScoreReport:
    """The classification report of ``ClassificationScorer`` in one call (options as there)."""
    return ClassificationScorer(y_true, probabilities, classes, **options).report()
