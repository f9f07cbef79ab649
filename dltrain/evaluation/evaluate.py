"""Evaluate a run's model: metrics by task, intervals, threshold, plots, gates and a baseline.

Everything a user can get wrong (gates, the threshold objective, the baseline, the data's
schema) is checked before the model runs, and files are written only once every number is
computed, so bad input never overwrites an earlier evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.data.store import open_store
from dltrain.errors import DataError, RunError, UsageError
from dltrain.evaluation import plots
from dltrain.evaluation.catalog import KEY_METRICS, task_metrics
from dltrain.evaluation.gates import (
    Comparison,
    Gate,
    GateResult,
    apply_gates,
    check_gate_names,
    compare_with_baseline,
)
from dltrain.evaluation.inputs import TableInput, conform_examples, open_input
from dltrain.evaluation.metrics import (
    AutoencoderScorer,
    ClassificationScorer,
    ForecastingScorer,
    RegressionScorer,
    Scorer,
    ScoreReport,
    anomaly_scores,
    anomaly_threshold,
    bootstrap_intervals,
    class_probabilities,
    positive_scores,
)
from dltrain.evaluation.predict import predict_batches, validation_anomaly_threshold
from dltrain.evaluation.report import render_markdown
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.evaluation.threshold import (
    ThresholdObjective,
    choose_threshold,
    read_threshold,
    write_threshold,
)
from dltrain.manifest import SequenceFeatures
from dltrain.recipe.schema import EvaluateSpec
from dltrain.runs import THRESHOLD_FILE, metrics_file, write_json_atomic, write_text_atomic
from dltrain.training.curves import plot_learning_curves

SCHEMA_VERSION = 2
CONFIDENCE = 0.95
Status = Callable[[str], None]


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate and how.

    Attributes:
        run_dir: the run folder.
        spec: the recipe's ``evaluate`` section (split, batch size, bootstrap, plots, …).
        seed: fixes the bootstrap resamples.
        data: labelled raw data to evaluate on instead of a prepared split.
        gates: parsed gates (the recipe's and the command line's).
        optimize_threshold: binary only: choose and store a decision threshold first.
        baseline: another run to compare with on the same examples.
    """

    run_dir: Path
    spec: EvaluateSpec = field(default_factory=EvaluateSpec)
    seed: int = 0
    data: Path | None = None
    gates: tuple[Gate, ...] = ()
    optimize_threshold: ThresholdObjective | None = None
    baseline: Path | None = None


@dataclass(frozen=True)
class Evaluation:
    document: dict[str, Any]
    metrics_path: Path
    gates: list[GateResult]
    comparisons: list[Comparison]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates) and all(c.passed for c in self.comparisons)

    def failures(self) -> list[str]:
        """One phrase per failed gate or comparison, for the error paragraph."""
        found = [
            f"{g.gate.metric} is {_number(g.value)}, not {g.gate.operator} {g.gate.bound:g}"
            for g in self.gates
            if not g.passed
        ]
        found += [
            f"{c.metric} fell from {_number(c.baseline)} to {_number(c.value)}"
            for c in self.comparisons
            if not c.passed
        ]
        return found


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


@dataclass
class Examples:
    x: Any  # an array, or one array per column for tables
    y: np.ndarray
    label: str  # names the metrics file and the plots folder: test, validation, data-<name>
    source: dict[str, Any]


def known_metrics(run: RunModel, spec: EvaluateSpec) -> list[str]:
    """Every headline metric name an evaluation of ``run`` reports."""
    infos = task_metrics(run.task, num_classes=len(run.classes), top_k=spec.top_k)
    return [info.name for info in infos]


def check_request(request: EvaluationRequest, run: RunModel) -> RunModel | None:
    """Refuse what cannot work before any model runs; returns the opened baseline run.

    Raises:
        UsageError: unknown gate metric, a threshold asked of a non-binary model, --data with
            --split.
        RunError: a baseline that does not match.
    """
    check_gate_names(request.gates, known_metrics(run, request.spec), run.classes)
    if request.optimize_threshold is not None and run.task != "binary":
        raise UsageError(
            f"--optimize-threshold picks the decision threshold of a binary classifier, but run "
            f"{run.run_dir.name} is a {run.task} model"
            + (
                f" with {len(run.classes)} classes (it predicts the likeliest one)"
                if run.is_classifier
                else " (it has no classes to threshold)"
            )
            + ". Drop --optimize-threshold."
        )
    if request.baseline is None:
        return None
    baseline = open_run(request.baseline)
    if baseline.run_dir.resolve() == run.run_dir.resolve():
        raise UsageError(
            f"--baseline names the run being evaluated ({run.run_dir}); compare with another run."
        )
    if (baseline.task, baseline.classes, baseline.model_input.shape) != (
        run.task,
        run.classes,
        run.model_input.shape,
    ):
        raise RunError(
            f"Baseline run {baseline.run_dir} is a {baseline.task} model over "
            f"{baseline.model_input.shape} inputs with classes {baseline.classes or 'none'}; run "
            f"{run.run_dir} is a {run.task} model over {run.model_input.shape} with classes "
            f"{run.classes or 'none'}. A baseline must answer the same question on the same "
            f"inputs; pick a run of the same recipe."
        )
    return baseline


def _prepared(run: RunModel) -> Any:
    if run.data_folder is None:
        raise DataError(
            f"Run {run.run_dir} does not name a prepared dataset to read splits from. Evaluate "
            f"on labelled raw data with --data PATH instead."
        )
    dataset = open_store(run.data_folder)
    if dataset.manifest.source.fingerprint != run.info["data"]["fingerprint"]:
        raise RunError(
            f"The prepared dataset {dataset.folder} was rebuilt from a different source since run "
            f"{run.run_dir.name} was trained, so its splits are not the ones the run held out. "
            f"Evaluate a run trained on the current data (train again), or restore the data."
        )
    return dataset


def load_examples(run: RunModel, request: EvaluationRequest) -> Examples:
    """The examples to evaluate: a prepared split, or labelled raw data passed with --data.

    Raises:
        DataError: missing data, or data whose schema differs from the run's.
    """
    if request.data is None:
        split = request.spec.split.value
        dataset = _prepared(run)
        x, y = dataset.load_split(split, resample=False)  # the train split as stored, unbalanced
        source: dict[str, Any] = {"kind": "split", "folder": str(dataset.folder), "split": split}
        return Examples(x, y, split, source)
    path = request.data
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name.split(".")[0]).strip("_") or "input"
    if run.model_input.kind in ("table", "text"):
        x, y = _labelled_table(run, path)
        source = {"kind": "file", "path": str(path), "files": [str(path)]}
        return Examples(x, y, f"data-{slug}", source)
    from dltrain.data.sources import read_source
    from dltrain.recipe.data import DataFormat, ImageSpec

    shape = run.model_input.shape
    image = None
    if run.model_input.kind == "image" and len(shape) == 3 and shape[-1] in (1, 3):
        image = ImageSpec(size=[shape[0], shape[1]], channels=shape[-1])  # class folders
    source_arrays = read_source(path, DataFormat.AUTO, image)
    xs = [x for x, _ in source_arrays.splits.values()]
    ys = [y for _, y in source_arrays.splits.values()]
    x = conform_examples(np.concatenate(xs), run.model_input, str(path))
    y = np.concatenate(ys)
    if source_arrays.class_names is not None and run.is_classifier:
        # class folders are numbered in their own order: match them to the run's by name
        unknown = [c for c in source_arrays.class_names if c not in run.classes]
        if unknown:
            raise DataError(
                f"{path} has class folder(s) {', '.join(unknown)} that run {run.run_dir.name} "
                f"does not know. Its classes: {', '.join(run.classes)}. The data's schema "
                f"differs from the run's; rename or drop those folders."
            )
        y = np.asarray([run.classes.index(c) for c in source_arrays.class_names])[y]
    if run.is_classifier and len(y) and (y.min() < 0 or y.max() >= len(run.classes)):
        raise DataError(
            f"{path} has labels from {int(y.min())} to {int(y.max())}, but run "
            f"{run.run_dir.name} knows {len(run.classes)} classes (0-{len(run.classes) - 1}: "
            f"{', '.join(run.classes)}). The data's schema differs from the run's; give "
            f"data labelled like the training source."
        )
    files = [str(p) for p in source_arrays.files]
    return Examples(x, y, f"data-{slug}", {"kind": "file", "path": str(path), "files": files})


def _labelled_table(run: RunModel, path: Path) -> tuple[Any, np.ndarray]:
    """A table's feature columns as the model takes them, and its target column as labels.

    Class labels are matched to the run's class names (a trailing '.', as in adult.test, is
    forgiven); numeric targets are read in their own units.

    Raises:
        DataError: the target column is absent, or holds labels or values the run cannot score.
    """
    model_input = run.model_input
    reader = open_input(path, model_input, "table")
    assert isinstance(reader, TableInput)
    targets = [t for t in model_input.targets if t in reader.extra]
    if not targets or len(targets) != len(model_input.targets):
        raise DataError(
            f"{path} has no target column {', '.join(model_input.targets) or '(unknown)'}, so "
            f"there is nothing to evaluate against. Give labelled data, or use `dltrain "
            f"predict` for unlabelled rows."
        )
    if run.is_classifier:
        index = {name: i for i, name in enumerate(run.classes)}
        raw = [str(v).strip() for v in reader.extra[targets[0]]]
        labels = [index.get(v, index.get(v.rstrip("."), -1)) for v in raw]
        unknown = sorted({v for v, i in zip(raw, labels, strict=True) if i < 0})
        if unknown:
            raise DataError(
                f"{path} has target values the run does not know as classes: "
                f"{', '.join(map(repr, unknown[:8]))}. Its classes: {', '.join(run.classes)}. "
                f"The data's schema differs from the run's; relabel the rows."
            )
        return reader.features, np.asarray(labels, dtype=np.int64)
    try:
        values = np.stack([np.asarray(reader.extra[t], dtype=np.float64) for t in targets], 1)
    except ValueError as exc:
        raise DataError(
            f"{path}: the target column(s) {', '.join(targets)} hold values that are not "
            f"numbers ({exc}). Expected the target in its own units."
        ) from None
    if not np.isfinite(values).all():
        raise DataError(
            f"{path}: {int((~np.isfinite(values)).any(axis=1).sum())} row(s) have no target "
            f"value. Drop them; a row without a target cannot be scored."
        )
    return reader.features, values[:, 0] if values.shape[1] == 1 else values


def _last_observed(x: Any, run: RunModel, width: int) -> np.ndarray | None:
    """The last value of each target in each input window, when the windows hold the targets.

    The manifest names the window's feature columns and the targets; a univariate series is
    its own target.
    """
    if not isinstance(x, np.ndarray) or x.ndim not in (2, 3):
        return None
    window = run.manifest.features
    features = list(window.columns) if isinstance(window, SequenceFeatures) else []
    targets = run.target_names
    if x.ndim == 3 and targets and all(t in features for t in targets):
        return np.asarray(x[:, -1, [features.index(t) for t in targets]], np.float64)
    if x.ndim == 3 and x.shape[-1] == width and not features:
        return np.asarray(x[:, -1, :], np.float64)
    if x.ndim == 2 and width == 1:
        return np.asarray(x[:, -1], np.float64)
    return None


@dataclass
class Scored:
    scorer: Scorer
    report: ScoreReport
    threshold: dict[str, Any] | None


def score(
    run: RunModel,
    examples: Examples,
    outputs: np.ndarray,
    spec: EvaluateSpec,
    threshold: dict[str, Any] | None,
) -> Scored:
    """The task's scorer over ``outputs``, and its report."""
    scorer: Scorer
    if run.is_classifier:
        value = float(threshold["threshold"]) if threshold else None
        scorer = ClassificationScorer(
            examples.y,
            outputs,
            run.classes,
            threshold=value,
            top_k=spec.top_k,
            calibration_bins=spec.calibration_bins,
        )
    elif run.task == "reconstruction":
        errors = anomaly_scores(examples.x, outputs)
        cut = (
            float(threshold["threshold"])
            if threshold
            else anomaly_threshold(errors, spec.anomaly_percentile)
        )
        scorer = AutoencoderScorer(errors, cut)
    elif run.task == "forecasting":
        width = max(len(run.target_names), 1)
        y = np.asarray(examples.y)
        if y.ndim == 3:
            width = y.shape[2]
        scorer = ForecastingScorer(
            y,
            outputs.reshape(y.shape),
            _last_observed(examples.x, run, width),
            run.target_names,
            width=width,
        )
    elif run.task == "regression":
        y = np.asarray(examples.y)
        scorer = RegressionScorer(y, outputs.reshape(y.shape), run.target_names)
    else:
        raise RunError(
            f"Run {run.run_dir} is a {run.task!r} model, which this dltrain cannot evaluate yet."
        )
    return Scored(scorer, scorer.report(), threshold)


def _threshold_for(
    run: RunModel,
    request: EvaluationRequest,
    model: Any,
    status: Status,
) -> tuple[dict[str, Any] | None, bool]:
    """The decision or anomaly threshold to use, and whether it is new (to be stored)."""
    spec = request.spec
    if request.optimize_threshold is not None:
        dataset = _prepared(run)
        x, y = dataset.load_split("validation")
        status(
            f"Choosing the threshold ({request.optimize_threshold.text}) on the validation split"
        )
        scores = positive_scores(class_probabilities(predict_batches(model, x, spec.batch_size)))
        choice = choose_threshold(y, scores, request.optimize_threshold, "validation")
        return choice.to_json(), True
    stored = read_threshold(run.run_dir)
    if run.task == "binary":
        return (stored if stored and stored.get("kind") != "anomaly" else None), False
    if run.task == "reconstruction":
        percentile = spec.anomaly_percentile
        if stored and stored.get("kind") == "anomaly" and stored.get("percentile") == percentile:
            return stored, False
        if run.data_folder is None:
            return None, False  # the threshold comes from the evaluated data itself
        status(f"Setting the anomaly threshold at percentile {percentile:g} of validation errors")
        x, _ = _prepared(run).load_split("validation")
        return validation_anomaly_threshold(model, x, spec.batch_size, percentile), True
    return None, False


def evaluate(request: EvaluationRequest, status: Status | None = None) -> Evaluation:
    """Evaluate a run's model and write metrics, plots and the report into the run folder.

    Args:
        request: what to evaluate and how.
        status: receives a short line for each stage (prediction, bootstrap, plots).

    Returns:
        The metrics document (``schema_version`` 2, see docs/metrics-schema.md), where it was
        written, and the gate and baseline results.

    Raises:
        RunError: the run (or baseline) has no usable model or data.
        DataError: the data is missing, changed, or shaped unlike the run's.
        UsageError: a gate names an unknown metric; a threshold asked of a non-binary model.
        ThresholdUnreachable: the threshold objective's constraint holds nowhere (exit 1).
    """
    say: Status = status or (lambda _: None)
    spec = request.spec
    run = open_run(request.run_dir)
    baseline = check_request(request, run)
    examples = load_examples(run, request)
    if len(examples.y) == 0:
        raise DataError(f"There are no examples to evaluate in {examples.label}.")

    model = run.load_keras()
    threshold, new_threshold = _threshold_for(run, request, model, say)
    say(f"Predicting {len(examples.y):,} examples ({examples.label})")
    outputs = predict_batches(model, examples.x, spec.batch_size)
    scored = score(run, examples, outputs, spec, threshold)

    intervals = bootstrap(scored, request, say)
    against = compare_baseline(baseline, run, examples, scored, request, say)
    comparisons = against.comparisons
    gate_results = apply_gates(request.gates, scored.report.metrics, scored.report.per_class or [])

    written: list[Path] = []
    if spec.plots:
        say("Drawing plots")
        written = draw_plots(run, examples, outputs, scored, spec)

    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": str(run.run_dir),
        "recipe": run.recipe_name,
        "task": run.task,
        "split": examples.source.get("split"),
        "data": examples.source,
        "num_examples": int(len(examples.y)),
        "evaluated": datetime.now(UTC).isoformat(timespec="seconds"),
        **scored.report.to_json(),
        "intervals": intervals,
        "bootstrap": {"resamples": spec.bootstrap, "confidence": CONFIDENCE, "seed": request.seed}
        if spec.bootstrap
        else None,
        "threshold": _threshold_summary(run, threshold, new_threshold),
        "plots": [str(p.relative_to(run.run_dir)) for p in written],
        "gates": [g.to_json() for g in gate_results],
        "baseline": against.document,
        "passed": all(g.passed for g in gate_results) and all(c.passed for c in comparisons),
    }
    path = write_evaluation(run, examples.label, document, threshold if new_threshold else None)
    return Evaluation(document, path, gate_results, comparisons)


def bootstrap(
    scored: Scored, request: EvaluationRequest, say: Status
) -> dict[str, dict[str, float]]:
    """Bootstrap confidence intervals of the headline metrics; none when not asked for.

    Args:
        scored: the scorer and its report.
        request: the evaluation's settings (resamples) and seed.
        say: receives a line when resampling starts.

    Returns:
        ``{metric: {"low": …, "high": …}}``.
    """
    spec = request.spec
    if spec.bootstrap <= 0:
        return {}
    say(f"Bootstrapping {spec.bootstrap:,} resamples for {CONFIDENCE:.0%} intervals")
    found = bootstrap_intervals(scored.scorer, spec.bootstrap, request.seed, CONFIDENCE)
    # the anomaly threshold is a setting read off the validation split, not an estimate
    found.pop("anomaly_threshold", None)
    return {k: {"low": v.low, "high": v.high} for k, v in found.items()}


@dataclass(frozen=True)
class BaselineComparison:
    """How the run fared against its baseline: each comparison, and the document's entry."""

    comparisons: list[Comparison] = field(default_factory=list)
    document: dict[str, Any] | None = None


def compare_baseline(
    baseline: RunModel | None,
    run: RunModel,
    examples: Examples,
    scored: Scored,
    request: EvaluationRequest,
    say: Status,
) -> BaselineComparison:
    """Score the baseline run on the same examples and compare the key and gated metrics.

    Args:
        baseline: the opened baseline run, or None (nothing to compare).
        run: the run being evaluated.
        examples: the examples both are scored on.
        scored: the run's scores.
        request: the evaluation's settings (tolerance, gates).
        say: receives a line when the baseline is evaluated.

    Returns:
        The comparisons and the metrics document's ``baseline`` entry.
    """
    if baseline is None:
        return BaselineComparison()
    spec = request.spec
    say(f"Evaluating the baseline {baseline.run_dir.name} on the same examples")
    base_outputs = predict_batches(baseline.load_keras(), examples.x, spec.batch_size)
    base_threshold = None
    if baseline.task in ("binary", "reconstruction"):
        base_threshold = read_threshold(baseline.run_dir)
    base = score(baseline, examples, base_outputs, spec, base_threshold)
    names = list(
        dict.fromkeys([*KEY_METRICS.get(run.task, ()), *(g.metric for g in request.gates)])
    )
    comparisons = compare_with_baseline(
        names,
        scored.report.metrics,
        base.report.metrics,
        spec.tolerance,
        (scored.report.per_class or [], base.report.per_class or []),
    )
    document = {
        "run": str(baseline.run_dir),
        "tolerance": spec.tolerance,
        "metrics": base.report.metrics,
        "comparisons": [c.to_json() for c in comparisons],
    }
    return BaselineComparison(comparisons, document)


def write_evaluation(
    run: RunModel, label: str, document: dict[str, Any], new_threshold: dict[str, Any] | None
) -> Path:
    """Write the metrics document, its Markdown report and a newly chosen threshold.

    Args:
        run: the evaluated run, whose folder receives the files.
        label: the examples' label (test, validation, data-<name>), which names the files.
        document: the metrics document.
        new_threshold: a threshold chosen by this evaluation, to be stored; None otherwise.

    Returns:
        The metrics file written.
    """
    if new_threshold is not None:
        write_threshold(run.run_dir, new_threshold)
    path = run.run_dir / metrics_file(label)
    write_json_atomic(path, document)
    report_name = "report.md" if label == "test" else f"report-{label}.md"
    write_text_atomic(run.run_dir / report_name, render_markdown(document))
    return path


def _threshold_summary(
    run: RunModel, threshold: dict[str, Any] | None, new: bool
) -> dict[str, Any] | None:
    if run.task == "binary":
        if threshold is None:
            return {"value": 0.5, "source": "default", "objective": None, "chosen_on": None}
        return {
            "value": float(threshold["threshold"]),
            "source": "chosen now" if new else THRESHOLD_FILE,
            "objective": threshold.get("objective"),
            "chosen_on": threshold.get("chosen_on"),
            "achieved": threshold.get("achieved"),
        }
    if run.task == "reconstruction" and threshold is not None:
        return {
            "value": float(threshold["threshold"]),
            "source": "chosen now" if new else THRESHOLD_FILE,
            "objective": f"percentile {threshold.get('percentile', '?')} of reconstruction errors",
            "chosen_on": threshold.get("chosen_on"),
        }
    return None


def draw_plots(
    run: RunModel, examples: Examples, outputs: np.ndarray, scored: Scored, spec: EvaluateSpec
) -> list[Path]:
    """The task's PNG plots in plots/<label>/, and the run's learning curves."""
    folder = run.files.plots(examples.label)
    written: list[Path] = []
    scorer = scored.scorer
    if isinstance(scorer, ClassificationScorer):
        assert scored.report.confusion_matrix is not None  # every classifier reports one
        counts = np.asarray(scored.report.confusion_matrix.counts)
        written.append(
            plots.confusion_matrix_plot(counts, run.classes, folder / "confusion_matrix.png")
        )
        probabilities, y = scorer.probabilities, scorer.y_true
        written.append(plots.roc_plot(y, probabilities, run.classes, folder / "roc_curve.png"))
        written.append(plots.pr_plot(y, probabilities, run.classes, folder / "pr_curve.png"))
        written.append(
            plots.calibration_plot(
                y, probabilities, spec.calibration_bins, folder / "calibration.png"
            )
        )
    elif isinstance(scorer, AutoencoderScorer):
        written.append(
            plots.reconstruction_plot(
                scorer.errors, scorer.threshold, folder / "reconstruction_error.png"
            )
        )
    elif isinstance(scorer, RegressionScorer | ForecastingScorer):
        names = run.target_names or ["value"]
        written.append(plots.residuals_plot(examples.y, outputs, names, folder / "residuals.png"))
    if run.files.learning_curves.is_file():
        written.append(run.files.learning_curves)  # training drew them; no second copy
    else:  # a run from before training drew them: draw them where training would have
        curves = plot_learning_curves(run.files.history, run.files.learning_curves)
        if curves is not None:
            written.append(curves)
    return written
