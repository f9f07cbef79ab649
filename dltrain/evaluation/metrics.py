"""Classification metrics from labels and predicted probabilities (NumPy only, no TensorFlow)."""

from __future__ import annotations

from typing import Any

import numpy as np

EPSILON = 1e-7  # the clip Keras's cross-entropy uses, so our loss matches model.evaluate


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts; row = true class, column = predicted class."""
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # An empty denominator gives 0 (scikit-learn's zero_division=0), not NaN.
    return np.divide(
        numerator,
        denominator,
        out=np.zeros_like(numerator, dtype=np.float64),
        where=denominator > 0,
    )


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Loss, accuracy, per-class precision/recall/F1 with macro and weighted means, confusion.

    Args:
        y_true: integer labels, shape (n,).
        probabilities: predicted class probabilities, shape (n, num_classes).
        classes: class names in label order.

    Returns:
        ``{"metrics": {...}, "per_class": [...], "confusion_matrix": {...}}``.
    """
    num_classes = len(classes)
    y_pred = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(y_true)), y_true]
    loss = float(-np.mean(np.log(np.clip(picked, EPSILON, 1.0 - EPSILON))))
    counts = confusion_matrix(y_true, y_pred, num_classes)
    true_positive = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1).astype(np.float64)
    predicted = counts.sum(axis=0).astype(np.float64)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    weights = support / max(support.sum(), 1.0)
    metrics = {
        "loss": loss,
        "accuracy": float(true_positive.sum() / max(len(y_true), 1)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_weighted": float(precision @ weights),
        "recall_weighted": float(recall @ weights),
        "f1_weighted": float(f1 @ weights),
    }
    per_class = [
        {
            "class": name,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    ]
    return {
        "metrics": metrics,
        "per_class": per_class,
        "confusion_matrix": {"labels": list(classes), "counts": counts.tolist()},
    }
