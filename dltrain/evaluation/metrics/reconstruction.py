"""Autoencoders (task: reconstruction): per-example reconstruction errors and the anomaly
threshold over them (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltrain.evaluation.metrics.common import unit_weights, weighted_quantile
from dltrain.evaluation.metrics.scores import ErrorHistogram, Metrics, ScoreReport


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
        w = unit_weights(self.num_examples, weights)
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

    def report(self) -> ScoreReport:
        """Headline metrics plus a histogram of the errors."""
        counts, edges = np.histogram(self.errors, bins=20)
        histogram = ErrorHistogram(counts.tolist(), edges.tolist())
        return ScoreReport(self.headline(), reconstruction_error=histogram)


def anomaly_threshold(errors: np.ndarray, percentile: float) -> float:
    """The ``percentile`` (0-100) of ``errors``: reconstruction errors above it are anomalies."""
    return weighted_quantile(np.asarray(errors, np.float64), None, percentile / 100.0)
