"""Metrics from targets and model outputs, by task (NumPy only, no TensorFlow).

Every headline metric accepts per-example weights. A bootstrap resample is then just a vector of
counts (how often each example was drawn), so confidence intervals cost one pass over arrays
prepared once, rather than re-sorting and copying the data for every resample.

One module per task family (``classification``, ``regression`` with forecasting,
``reconstruction``), what they share in ``common``, and ``bootstrap``; this package's names are
the ones the rest of dltrain imports.
"""

from dltrain.evaluation.metrics.bootstrap import Interval, bootstrap_intervals
from dltrain.evaluation.metrics.classification import (
    ClassificationScorer,
    RankedScores,
    calibration_bin_index,
    class_probabilities,
    classification_metrics,
    confusion_matrix,
    positive_scores,
    predicted_classes,
)
from dltrain.evaluation.metrics.common import Metrics, Scorer, weighted_quantile
from dltrain.evaluation.metrics.reconstruction import (
    AutoencoderScorer,
    anomaly_scores,
    anomaly_threshold,
    reconstruction_errors,
)
from dltrain.evaluation.metrics.regression import ForecastingScorer, RegressionScorer

__all__ = [
    "AutoencoderScorer",
    "ClassificationScorer",
    "ForecastingScorer",
    "Interval",
    "Metrics",
    "RankedScores",
    "RegressionScorer",
    "Scorer",
    "anomaly_scores",
    "anomaly_threshold",
    "bootstrap_intervals",
    "calibration_bin_index",
    "class_probabilities",
    "classification_metrics",
    "confusion_matrix",
    "positive_scores",
    "predicted_classes",
    "reconstruction_errors",
    "weighted_quantile",
]
