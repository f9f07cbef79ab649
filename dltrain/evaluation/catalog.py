"""The names of every metric evaluate reports, by task, and which way is better. Light.

One catalogue serves the metric functions, gates (``--require``), baseline comparisons, the
``runs`` table and the README, so a name means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

Metrics = dict[str, float | None]  # headline metrics by name; None where undefined (AUC, one class)


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"
    NEITHER = "neither"  # a setting that was measured (the anomaly threshold), not a score


@dataclass(frozen=True)
class MetricInfo:
    name: str
    better: Better
    description: str


def _m(name: str, better: Better, description: str) -> MetricInfo:
    return MetricInfo(name, better, description)


H, L, N = Better.HIGHER, Better.LOWER, Better.NEITHER

CLASSIFICATION = (
    _m("loss", L, "cross-entropy (log loss), as Keras's model.evaluate reports it"),
    _m("log_loss", L, "the same value as loss, under scikit-learn's name"),
    _m("accuracy", H, "share of examples whose predicted class is the true one"),
    _m("balanced_accuracy", H, "mean recall over classes; immune to class imbalance"),
    _m("precision_macro", H, "precision per class, averaged with equal weight"),
    _m("recall_macro", H, "recall per class, averaged with equal weight"),
    _m("f1_macro", H, "F1 per class, averaged with equal weight"),
    _m("precision_weighted", H, "precision per class, averaged weighted by support"),
    _m("recall_weighted", H, "recall per class, averaged weighted by support"),
    _m("f1_weighted", H, "F1 per class, averaged weighted by support"),
    _m("roc_auc", H, "area under the ROC curve (multiclass: one-vs-rest, macro average)"),
    _m("pr_auc", H, "average precision (multiclass: one-vs-rest, macro average)"),
    _m("expected_calibration_error", L, "mean gap between confidence and accuracy over bins"),
)
BINARY_ONLY = (
    _m("precision", H, "precision of the positive class (the second class) at the threshold"),
    _m("recall", H, "recall (sensitivity) of the positive class at the threshold"),
    _m("f1", H, "F1 of the positive class at the threshold"),
    _m("specificity", H, "recall of the negative class at the threshold"),
)
REGRESSION = (
    _m("mse", L, "mean squared error, in the target's units squared"),
    _m("rmse", L, "root mean squared error, in the target's units"),
    _m("mae", L, "mean absolute error, in the target's units"),
    _m("mape", L, "mean absolute percentage error in percent (rows with a zero target left out)"),
    _m("r2", H, "coefficient of determination (1 is perfect, 0 is predicting the mean)"),
)
FORECASTING_ONLY = (
    _m("mae_ratio_to_naive", L, "MAE over the MAE of repeating the last observed value (<1 wins)"),
    _m("rmse_ratio_to_naive", L, "RMSE over the RMSE of the naive last-value forecast"),
)
AUTOENCODER = (
    _m("reconstruction_error_mean", L, "mean per-example reconstruction error (MSE)"),
    _m("reconstruction_error_median", L, "median per-example reconstruction error"),
    _m("reconstruction_error_p95", L, "95th percentile of the per-example reconstruction error"),
    _m("reconstruction_error_p99", L, "99th percentile of the per-example reconstruction error"),
    _m("reconstruction_error_max", L, "largest per-example reconstruction error"),
    _m("anomaly_threshold", N, "errors above it are anomalies (a percentile of validation errors)"),
    _m("anomaly_rate", N, "share of the evaluated examples above the anomaly threshold"),
)
GENERATION = (
    # the run's own discriminator judges the test split's real images against as many generated
    # ones; 0.5 means it cannot tell them apart (the generator wins), 1.0 that it always can
    _m(
        "discriminator_accuracy", L, "share of real and generated images it tells apart (0.5: none)"
    ),
    _m("real_accuracy", N, "share of real images the discriminator calls real"),
    _m("fake_accuracy", L, "share of generated images the discriminator calls generated"),
    _m("real_score_mean", N, "mean probability of being real the discriminator gives real images"),
    _m("fake_score_mean", H, "mean probability of being real it gives generated images"),
)
# Per-class metrics gates can name as `recall[cat]`.
PER_CLASS = ("precision", "recall", "f1", "roc_auc", "pr_auc")
# The metrics a baseline comparison checks, besides those named in gates.
KEY_METRICS = {
    "binary": ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
    "forecasting": ("rmse", "mae", "mae_ratio_to_naive"),
    "reconstruction": ("reconstruction_error_mean",),
    "generation": ("discriminator_accuracy",),
}
CLASSIFICATION_TASKS = ("binary", "multiclass")


def top_k_name(k: int) -> str:
    """The name of top-k accuracy for a given k: ``top_3_accuracy``."""
    return f"top_{k}_accuracy"


def task_metrics(task: str, *, num_classes: int = 0, top_k: int = 3) -> list[MetricInfo]:
    """Every headline metric evaluate reports for ``task``, in report order.

    Args:
        task: binary, multiclass, regression, forecasting, reconstruction (autoencoders) or
            generation (GANs).
        num_classes: classification only; top-k accuracy is reported when there are more than k.
        top_k: the k of top-k accuracy.
    """
    if task in CLASSIFICATION_TASKS:
        found = list(CLASSIFICATION)
        if task == "binary":
            found[3:3] = BINARY_ONLY
        if num_classes > top_k:
            found.append(
                _m(top_k_name(top_k), H, f"share whose true class is among the {top_k} likeliest")
            )
        return found
    if task == "regression":
        return list(REGRESSION)
    if task == "forecasting":
        return [*REGRESSION, *FORECASTING_ONLY]
    if task == "reconstruction":
        return list(AUTOENCODER)
    if task == "generation":
        return list(GENERATION)
    return []


def better(name: str) -> Better:
    """Which way ``name`` improves (per-class names such as ``recall[cat]`` included)."""
    base = name.split("[", 1)[0]
    if base.startswith("top_") and base.endswith("_accuracy"):
        return Better.HIGHER
    groups = (CLASSIFICATION, BINARY_ONLY, REGRESSION, FORECASTING_ONLY, AUTOENCODER, GENERATION)
    for group in groups:
        for info in group:
            if info.name == base:
                return info.better
    return Better.NEITHER
