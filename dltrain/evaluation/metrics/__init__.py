"""Metrics from targets and model outputs, by task (NumPy only, no TensorFlow).

Every headline metric accepts per-example weights. A bootstrap resample is then just a vector of
counts (how often each example was drawn), so confidence intervals cost one pass over arrays
prepared once, rather than re-sorting and copying the data for every resample.

One module per task family (``classification``, ``regression`` with forecasting,
``reconstruction``, ``generation``), the arithmetic they share in ``common``, the typed report
they return in ``scores``, and ``bootstrap``; this package's names are the ones the rest of
dltrain imports.
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
from dltrain.evaluation.metrics.common import weighted_quantile
from dltrain.evaluation.metrics.generation import GenerationScorer
from dltrain.evaluation.metrics.reconstruction import (
    AutoencoderScorer,
    anomaly_scores,
    anomaly_threshold,
    reconstruction_errors,
)
from dltrain.evaluation.metrics.regression import ForecastingScorer, RegressionScorer
from dltrain.evaluation.metrics.scores import (
    Calibration,
    CalibrationBin,
    Cell,
    ClassScores,
    ConfusionMatrix,
    DetailRow,
    DetailTable,
    ErrorHistogram,
    Metrics,
    Scored,
    Scorer,
    ScoreReport,
)

__all__ = [
    "AutoencoderScorer",
    "Calibration",
    "CalibrationBin",
    "Cell",
    "ClassScores",
    "ClassificationScorer",
    "ConfusionMatrix",
    "DetailRow",
    "DetailTable",
    "ErrorHistogram",
    "ForecastingScorer",
    "GenerationScorer",
    "Interval",
    "Metrics",
    "RankedScores",
    "RegressionScorer",
    "ScoreReport",
    "Scored",
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
