"""PNG plots of an evaluation, drawn with matplotlib's object API on the Agg canvas.

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so no global state or GUI
backend is involved, and each file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dltrain.atomic import atomic_path
from dltrain.evaluation.importance import Importance
from dltrain.evaluation.metrics import (
    AutoencoderScorer,
    ClassificationScorer,
    ForecastingScorer,
    RegressionScorer,
    Scored,
    calibration_bin_index,
)
from dltrain.evaluation.run_model import RunModel
from dltrain.training.curves import plot_learning_curves

MAX_POINTS = 5000  # residual scatter: enough to see the shape, small enough to stay a small PNG
MAX_LEGEND = 12


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return path


def confusion_matrix_plot(counts: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    """Row-normalised colours with the counts written in the cells (when there is room)."""
    counts = np.asarray(counts)
    size = max(4.5, 0.5 * len(labels) + 2.5)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    image = axes.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=45 if len(labels) > 4 else 0, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if normalized[i, j] > 0.5 else "black"
                axes.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour)
    axes.set_title("Confusion matrix (colour: row share)")
    return _save(figure, path)


def _class_curves(
    axes: Axes, y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], kind: str
) -> None:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    binary = len(classes) == 2
    for c in [1] if binary else range(len(classes)):
        positive = y_true == c
        if not positive.any() or positive.all():
            continue
        scores = probabilities[:, c]
        if kind == "roc":
            x, y, _ = roc_curve(positive, scores)
            area = auc(x, y)
        else:
            y, x, _ = precision_recall_curve(positive, scores)
            area = float(np.sum(np.diff(x[::-1]) * y[::-1][1:]))
        name = classes[c] if not binary else f"{classes[1]} (positive)"
        label = f"{name}: {area:.3f}" if len(classes) <= MAX_LEGEND else None
        axes.plot(x, y, linewidth=1.5 if binary else 1.0, label=label)
    if kind == "roc":
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
    else:
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    if len(classes) <= MAX_LEGEND:
        axes.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")


def roc_plot(
    y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], path: Path
) -> Path:
    """ROC curve (binary) or one-vs-rest curves per class, with their areas."""
    figure = Figure(figsize=(6, 5.5))
    axes = figure.add_subplot()
    _class_curves(axes, y_true, probabilities, classes, "roc")
    axes.set_title("ROC curve" + ("" if len(classes) == 2 else "s (one-vs-rest)"))
    return _save(figure, path)


def pr_plot(
    y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], path: Path
) -> Path:
    """Precision-recall curve (binary) or one-vs-rest curves, with average precision."""
    figure = Figure(figsize=(6, 5.5))
    axes = figure.add_subplot()
    _class_curves(axes, y_true, probabilities, classes, "pr")
    axes.set_title("Precision-recall curve" + ("" if len(classes) == 2 else "s (one-vs-rest)"))
    return _save(figure, path)


def calibration_plot(
    y_true: np.ndarray, probabilities: np.ndarray, num_bins: int, path: Path
) -> Path:
    """Reliability diagram of the top-class confidence, with how many examples each bin holds."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    index = calibration_bin_index(confidence, num_bins)
    counts = np.bincount(index, minlength=num_bins)
    accuracy = np.bincount(index, weights=correct, minlength=num_bins)
    mean_confidence = np.bincount(index, weights=confidence, minlength=num_bins)
    filled = counts > 0
    figure = Figure(figsize=(6, 6.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect")
    top.plot(
        mean_confidence[filled] / counts[filled],
        accuracy[filled] / counts[filled],
        marker="o",
        label="model",
    )
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1.02)
    top.legend(loc="upper left")
    top.set_title("Calibration (reliability diagram)")
    edges = np.linspace(0, 1, num_bins + 1)
    bottom.bar(edges[:-1], counts, width=1 / num_bins, align="edge", color="tab:grey")
    bottom.set_xlabel("confidence of the predicted class")
    bottom.set_ylabel("examples")
    bottom.set_xlim(0, 1)
    return _save(figure, path)


def residuals_plot(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str], path: Path, seed: int = 0
) -> Path:
    """Residual (true − predicted) against predicted, one panel per target (up to four)."""
    n = len(y_true)
    true = np.asarray(y_true, np.float64).reshape(n, -1)
    pred = np.asarray(y_pred, np.float64).reshape(n, -1)
    panels = min(true.shape[1], 4)
    figure = Figure(figsize=(6 * panels, 4.5))
    chosen = np.arange(n)
    if n > MAX_POINTS:
        chosen = np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))
    for j, axes in enumerate(np.atleast_1d(figure.subplots(1, panels))):
        residual = true[chosen, j] - pred[chosen, j]
        axes.scatter(pred[chosen, j], residual, s=6, alpha=0.4)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.set_xlabel(f"predicted {names[j] if j < len(names) else ''}".strip())
        axes.set_ylabel("residual (true − predicted)")
    figure.suptitle(
        "Residuals vs predicted" + (f" ({len(chosen):,} of {n:,})" if n > MAX_POINTS else "")
    )
    return _save(figure, path)


def reconstruction_plot(errors: np.ndarray, threshold: float, path: Path) -> Path:
    """Histogram of reconstruction errors with the anomaly threshold marked."""
    figure = Figure(figsize=(6.5, 4.5))
    axes = figure.add_subplot()
    axes.hist(errors, bins=50, color="tab:blue", alpha=0.8)
    axes.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.4g}")
    axes.set_xlabel("reconstruction error (MSE per example)")
    axes.set_ylabel("examples")
    axes.legend()
    axes.set_title("Reconstruction error")
    return _save(figure, path)


MAX_IMPORTANCE_BARS = 30  # the most important columns; metrics.json has every one


def importance_plot(importance: Importance, folder: Path) -> Path:
    """Permutation importance as horizontal bars, most important on top, with each bar's 95 %
    interval; written as ``importance.png`` in ``folder``."""
    shown = importance.columns[:MAX_IMPORTANCE_BARS]
    drops = np.array([c.drop for c in shown])
    errors = np.array([[c.drop - c.low for c in shown], [c.high - c.drop for c in shown]])
    figure = Figure(figsize=(7, max(2.5, 0.35 * len(shown) + 1.5)))
    axes = figure.add_subplot()
    positions = np.arange(len(shown))[::-1]
    colours = ["tab:blue" if d > 0 else "tab:grey" for d in drops]
    axes.barh(positions, drops, xerr=errors, color=colours, capsize=3)
    axes.set_yticks(positions, [c.column for c in shown])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(f"drop of {importance.metric} when the column is shuffled")
    left_out = len(importance.columns) - len(shown)
    more = f"; {left_out} more in metrics.json" if left_out else ""
    axes.set_title(
        f"Permutation importance ({importance.repeats} shuffles, {importance.num_rows:,} rows, "
        f"95% interval{more})",
        fontsize=10,
    )
    return _save(figure, folder / "importance.png")


def draw_plots(
    run: RunModel, label: str, y_true: np.ndarray, outputs: np.ndarray, scored: Scored
) -> list[Path]:
    """The task's PNG plots in plots/<label>/, and the run's learning curves.

    Args:
        run: the evaluated run, whose folder receives the plots.
        label: the examples' label (test, validation, data-<name>), which names the folder.
        y_true: the examples' targets.
        outputs: the model's outputs on them.
        scored: the task's scorer over the outputs, and its report.

    Returns:
        Every plot written or found, the learning curves last.
    """
    folder = run.files.plots(label)
    written = _task_plots(run, folder, y_true, outputs, scored)
    if run.files.learning_curves.is_file():
        written.append(run.files.learning_curves)  # training drew them; no second copy
    else:  # a run from before training drew them: draw them where training would have
        curves = plot_learning_curves(run.files.history, run.files.learning_curves)
        if curves is not None:
            written.append(curves)
    return written


def _task_plots(
    run: RunModel, folder: Path, y_true: np.ndarray, outputs: np.ndarray, scored: Scored
) -> list[Path]:
    scorer = scored.scorer
    if isinstance(scorer, ClassificationScorer):
        assert scored.report.confusion_matrix is not None  # every classifier reports one
        counts = np.asarray(scored.report.confusion_matrix.counts)
        probabilities, y = scorer.probabilities, scorer.y_true
        return [
            confusion_matrix_plot(counts, run.classes, folder / "confusion_matrix.png"),
            roc_plot(y, probabilities, run.classes, folder / "roc_curve.png"),
            pr_plot(y, probabilities, run.classes, folder / "pr_curve.png"),
            calibration_plot(y, probabilities, scorer.calibration_bins, folder / "calibration.png"),
        ]
    if isinstance(scorer, AutoencoderScorer):
        path = folder / "reconstruction_error.png"
        return [reconstruction_plot(scorer.errors, scorer.threshold, path)]
    if isinstance(scorer, RegressionScorer | ForecastingScorer):
        names = run.target_names or ["value"]
        return [residuals_plot(y_true, outputs, names, folder / "residuals.png")]
    return []
