"""Evaluate a run's model: metrics by task, intervals, threshold, plots, gates, the baselines
(class prior, training mean, naive forecasts, gradient boosting) and a baseline run.

Everything a user can get wrong (gates, the threshold objective, the baseline, the data's
schema) is checked before the model runs, and files are written only once every number is
computed, so bad input never overwrites an earlier evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import DataError, RunError
from dltrain.evaluation.baselines import TRIVIAL, BaselinePlan, baseline_outputs, plan_baselines
from dltrain.evaluation.baselines.verdicts import (
    DECIDING,
    losing_notes,
    losing_warnings,
    tiny_split_warning,
)
from dltrain.evaluation.catalog import better
from dltrain.evaluation.examples import (
    Examples,
    last_observed,
    load_examples,
    prepared_dataset,
    split_examples,
)
from dltrain.evaluation.gates import (
    BaselineResult,
    apply_gates,
    compare_with_baseline,
    compared_metrics,
)
from dltrain.evaluation.importance import (
    Importance,
    ImportanceSettings,
    sample_rows,
    shuffled_importance,
)
from dltrain.evaluation.metrics import (
    AutoencoderScorer,
    ClassificationScorer,
    ForecastingScorer,
    GenerationScorer,
    Interval,
    Metrics,
    RegressionScorer,
    Scored,
    Scorer,
    anomaly_scores,
    anomaly_threshold,
    bootstrap_intervals,
    class_probabilities,
    positive_scores,
)
from dltrain.evaluation.plots import draw_plots, importance_plot
from dltrain.evaluation.predict import validation_anomaly_threshold
from dltrain.evaluation.request import EvaluationRequest, check_request
from dltrain.evaluation.result import (
    BootstrapSettings,
    CalibrationSummary,
    Evaluation,
    MetricsDocument,
    write_evaluation,
)
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.evaluation.threshold import (
    StoredThreshold,
    ThresholdInUse,
    choose_threshold,
    read_stored_threshold,
    summarize_threshold,
)
from dltrain.recipe.schema import EvaluateSpec

CONFIDENCE = 0.95
Status = Callable[[str], None]


def score(
    run: RunModel,
    examples: Examples,
    outputs: np.ndarray,
    spec: EvaluateSpec,
    threshold: StoredThreshold | None,
) -> Scored:
    """The task's scorer over ``outputs``, and its report.

    Args:
        run: the run whose model gave ``outputs``.
        examples: the examples it was run on, with their labels.
        outputs: the model's outputs, one row per example.
        spec: the evaluation settings (top-k, calibration bins, anomaly percentile).
        threshold: the decision or anomaly threshold to apply; None: the default (0.5 for a
            binary classifier, the percentile of the evaluated errors for an autoencoder).
            A generation run's ``outputs`` are ``model_outputs``' two columns of
            discriminator scores.

    Raises:
        RunError: a task this dltrain cannot evaluate.
    """
    scorer: Scorer
    if run.is_classifier:
        scorer = ClassificationScorer(
            examples.y,
            outputs,
            run.classes,
            threshold=None if threshold is None else threshold.threshold,
            top_k=spec.top_k,
            calibration_bins=spec.calibration_bins,
        )
    elif run.task == "reconstruction":
        errors = anomaly_scores(examples.x, outputs)
        cut = (
            anomaly_threshold(errors, spec.anomaly_percentile)
            if threshold is None
            else threshold.threshold
        )
        scorer = AutoencoderScorer(errors, cut)
    elif run.task == "forecasting":
        scorer = _forecasting_scorer(run, examples, outputs)
    elif run.task == "generation":
        scorer = GenerationScorer(outputs[:, 0], outputs[:, 1])
    elif run.task == "regression":
        y = np.asarray(examples.y)
        scorer = RegressionScorer(y, outputs.reshape(y.shape), run.target_names)
    else:
        raise RunError(
            f"Run {run.run_dir} is a {run.task!r} model, which this dltrain cannot evaluate yet."
        )
    return Scored(scorer, scorer.report())


def model_outputs(run: RunModel, model: Any, x: Any, request: EvaluationRequest) -> np.ndarray:
    """The model's outputs on the examples ``x``, as the task's scorer reads them.

    Args:
        run: the run the model belongs to.
        model: its loaded Keras model.
        x: the examples' inputs.
        request: the evaluation's batch size, and the seed that fixes generated images.

    Returns:
        The model's predictions, one row per example; for a generation run, its discriminator's
        score of each real image beside that of one generated image (evaluation/generation.py).

    Raises:
        RunError: a generation run whose model is not a GAN.
    """
    batch_size = request.spec.batch_size
    if run.task == "generation":
        from dltrain.evaluation.generation import as_generator, judge

        return judge(as_generator(model, run), run, x, request.seed, batch_size)
    return run.predict(model, x, batch_size, request.tta)


def _forecasting_scorer(run: RunModel, examples: Examples, outputs: np.ndarray) -> Scorer:
    width = max(len(run.target_names), 1)
    y = np.asarray(examples.y)
    if y.ndim == 3:
        width = y.shape[2]
    return ForecastingScorer(
        y,
        outputs.reshape(y.shape),
        last_observed(examples.x, run, width),
        run.target_names,
        width=width,
    )


def _threshold_for(
    run: RunModel,
    request: EvaluationRequest,
    model: Any,
    status: Status,
) -> ThresholdInUse | None:
    """The decision or anomaly threshold to apply; None for the default (or no threshold)."""
    spec = request.spec
    if request.optimize_threshold is not None:
        validation = split_examples(run, "validation", request.input)
        status(
            f"Choosing the threshold ({request.optimize_threshold.text}) on the validation split"
        )
        outputs = validation.outputs(lambda x: run.predict(model, x, spec.batch_size))
        scores = positive_scores(class_probabilities(outputs))
        choice = choose_threshold(validation.y, scores, request.optimize_threshold, "validation")
        return ThresholdInUse(StoredThreshold.model_validate(choice.to_json()), new=True)
    stored = read_stored_threshold(run.run_dir)
    if run.task == "binary":
        return ThresholdInUse(stored) if stored and stored.kind != "anomaly" else None
    if run.task == "reconstruction":
        percentile = spec.anomaly_percentile
        if stored and stored.kind == "anomaly" and stored.percentile == percentile:
            return ThresholdInUse(stored)
        if run.data_folder is None:
            return None  # the threshold comes from the evaluated data itself
        status(f"Setting the anomaly threshold at percentile {percentile:g} of validation errors")
        x, _ = prepared_dataset(run).load_split("validation")
        x = run.manifest.model_inputs(x)
        chosen = validation_anomaly_threshold(model, x, spec.batch_size, percentile)
        return ThresholdInUse(chosen, new=True)
    return None


def evaluate(request: EvaluationRequest, status: Status | None = None) -> Evaluation:
    """Evaluate a run's model and write metrics, plots and the report into the run folder.

    Args:
        request: what to evaluate and how.
        status: receives a short line for each stage (prediction, bootstrap, plots).

    Returns:
        The metrics document (``schema_version`` 3, see docs/metrics-schema.md) with the gate
        and baseline results, and where it was written.

    Raises:
        RunError: the run (or baseline) has no usable model or data.
        DataError: the data is missing, changed, or shaped unlike the run's.
        UsageError: a gate names an unknown metric; a threshold asked of a non-binary model.
        ThresholdUnreachable: the threshold objective's constraint holds nowhere (exit 1).
    """
    say: Status = status or (lambda _: None)
    spec = request.spec
    run = open_run(request.run_dir)
    plan = plan_baselines(run)
    baseline = check_request(request, run, plan.names)
    examples = load_examples(run, request)
    if len(examples.y) == 0:
        raise DataError(f"There are no examples to evaluate in {examples.label}.")

    model = run.load_keras()
    threshold = _threshold_for(run, request, model, say)
    say(f"Predicting {len(examples.y):,} examples ({examples.label}{_streamed(examples)})")
    outputs = examples.outputs(lambda x: model_outputs(run, model, x, request))
    stored = None if threshold is None else threshold.stored
    scored = score(run, examples, outputs, spec, stored)
    calibration = calibration_summary(run, model, examples, outputs, scored, spec, stored)
    importance = feature_importance(run, model, examples, request, stored, say)

    intervals = bootstrap(scored, request, say)
    baselines, notes = score_baselines(run, examples, plan, spec, say)
    warnings = verdicts(run.task, scored.report.metrics, baselines, examples)
    warnings += [f"training: {w}" for w in run.info.warnings]  # a model card repeats them
    notes += losing_notes(run.task, scored.report.metrics, baselines)
    against = compare_baseline(baseline, run, examples, scored, request, say)
    gate_results = apply_gates(
        request.gates, scored.report.metrics, scored.report.per_class or [], baselines
    )
    written: list[Path] = []
    if spec.plots:
        say("Drawing plots")
        written = _draw_plots(run, model, examples, outputs, scored, request.seed, importance)

    document = MetricsDocument(
        run=run.run_dir,
        recipe=run.recipe_name,
        task=run.task,
        data=_described_source(run, examples, request.seed),
        num_examples=int(len(examples.y)),
        inputs=examples.inputs,
        evaluated=datetime.now(UTC).isoformat(timespec="seconds"),
        scores=scored.report,
        intervals=intervals,
        bootstrap=BootstrapSettings(spec.bootstrap, CONFIDENCE, request.seed)
        if spec.bootstrap
        else None,
        threshold=summarize_threshold(run.task, threshold),
        plots=[str(p.relative_to(run.run_dir)) for p in written],
        gates=gate_results,
        baseline=against,
        baselines=baselines,
        baseline_notes=notes,
        warnings=warnings,
        calibration=calibration,
        importance=importance,
        tta=run.tta_views(request.tta),
    )
    new_threshold = threshold.stored if threshold is not None and threshold.new else None
    path = write_evaluation(run.files, examples.label, document, new_threshold)
    return Evaluation(document, path)


def calibration_summary(
    run: RunModel,
    model: Any,
    examples: Examples,
    outputs: np.ndarray,
    scored: Scored,
    spec: EvaluateSpec,
    threshold: StoredThreshold | None,
) -> CalibrationSummary | None:
    """The calibration error and log loss without and with the model's temperature; None for a
    model with no temperature layer (``train.calibration``).

    The uncalibrated outputs are the calibrated ones with the temperature undone
    (evaluation/calibration.py ``uncalibrated``): the same model without its last layer.
    """
    if not run.is_classifier:
        return None
    from dltrain.evaluation.calibration import temperature_of, uncalibrated

    temperature = temperature_of(model)
    if temperature is None:
        return None
    before = score(run, examples, uncalibrated(outputs, temperature), spec, threshold)
    after = scored.report.metrics
    fitted = run.info.calibration
    return CalibrationSummary(
        temperature=temperature,
        fitted_on=fitted.fitted_on if fitted is not None else "validation",
        ece_before=before.report.metrics["expected_calibration_error"],
        ece_after=after["expected_calibration_error"],
        log_loss_before=before.report.metrics["log_loss"],
        log_loss_after=after["log_loss"],
    )


def feature_importance(
    run: RunModel,
    model: Any,
    examples: Examples,
    request: EvaluationRequest,
    threshold: StoredThreshold | None,
    say: Status,
) -> Importance | None:
    """Permutation importance of each raw input column (``evaluate.importance``); None when
    not asked for. check_request has refused it for models other than table predictors."""
    spec = request.spec
    if not spec.importance:
        return None
    metric = DECIDING[run.task]
    settings = ImportanceSettings(spec.importance_repeats, spec.importance_rows, request.seed)
    y = np.asarray(examples.y)
    index, rng = sample_rows(len(y), settings)
    rows = examples.rows(index)  # a streamed split's sampled rows, read shard by shard
    say(
        f"Permutation importance: {len(rows)} columns × {settings.repeats} shuffles of "
        f"{len(index):,} rows"
    )

    def metric_of(columns: dict[str, np.ndarray], index: np.ndarray) -> float:
        part = replace(examples, x=columns, y=y[index], reader=None)
        outputs = run.predict(model, columns, spec.batch_size)
        value = score(run, part, outputs, spec, threshold).report.metrics[metric]
        return float("nan") if value is None else float(value)

    return shuffled_importance(
        rows, index, len(y), rng, metric_of, (metric, better(metric)), settings
    )


def score_baselines(
    run: RunModel, examples: Examples, plan: BaselinePlan, spec: EvaluateSpec, say: Status
) -> tuple[dict[str, Metrics], list[str]]:
    """Each planned baseline's headline metrics on the examples, by the model's own scorer.

    Args:
        run: the evaluated run.
        examples: the examples the model was scored on.
        plan: the baselines to score.
        spec: the evaluation settings (top-k, calibration bins).
        say: receives a line when the gradient-boosting baseline is fitted.

    Returns:
        The metrics by baseline name, and notes on the baselines left out or how one was made.
    """
    parts = examples.parts if examples.streamed else None
    found = baseline_outputs(run, examples.x, np.asarray(examples.y), plan, say, parts)
    metrics = {
        name: score(run, examples, outputs, spec, None).report.metrics
        for name, outputs in found.outputs.items()
    }
    return metrics, found.notes


def verdicts(
    task: str, metrics: Metrics, baselines: dict[str, Metrics], examples: Examples
) -> list[str]:
    """The warnings an evaluation says out loud: the model no better than a trivial baseline,
    and a split too small for its numbers to mean much."""
    split = examples.source.get("kind") == "split"
    where = f"the {examples.label} split" if split else f"the data in {examples.source['path']}"
    warnings = losing_warnings(task, metrics, baselines, TRIVIAL.get(task, ()), where)
    tiny = tiny_split_warning(len(examples.y), where)
    return warnings + ([tiny] if tiny else [])


def _draw_plots(
    run: RunModel,
    model: Any,
    examples: Examples,
    outputs: np.ndarray,
    scored: Scored,
    seed: int,
    importance: Importance | None,
) -> list[Path]:
    """The task's plots; a generation run's grid of generated images (from ``seed``) first,
    the permutation importance's bars last when it was measured."""
    written = draw_plots(run, examples.label, examples.y, outputs, scored)
    if run.task == "generation":
        from dltrain.evaluation.generation import as_generator, write_sample_grid

        folder = run.files.plots(examples.label)
        written.insert(0, write_sample_grid(as_generator(model, run), run, folder, seed))
    if importance is not None:
        written.append(importance_plot(importance, run.files.plots(examples.label)))
    return written


def _streamed(examples: Examples) -> str:
    """How a streamed split is read, for the status line; nothing for one in memory."""
    if examples.reader is None:
        return ""
    return f", streamed from {examples.reader.num_shards} shard files"


def _described_source(run: RunModel, examples: Examples, seed: int) -> Mapping[str, object]:
    """Where the examples came from; for a generation run, also the images generated to
    judge against them and the seed that makes them again."""
    if run.task != "generation":
        return examples.source
    return {**examples.source, "generated": {"num_images": len(examples.y), "seed": seed}}


def bootstrap(scored: Scored, request: EvaluationRequest, say: Status) -> dict[str, Interval]:
    """Bootstrap confidence intervals of the headline metrics; none when not asked for.

    Args:
        scored: the scorer and its report.
        request: the evaluation's settings (resamples) and seed.
        say: receives a line when resampling starts.

    Returns:
        Each metric's interval, by name.
    """
    spec = request.spec
    if spec.bootstrap <= 0:
        return {}
    say(f"Bootstrapping {spec.bootstrap:,} resamples for {CONFIDENCE:.0%} intervals")
    found = bootstrap_intervals(scored.scorer, spec.bootstrap, request.seed, CONFIDENCE)
    # the anomaly threshold is a setting read off the validation split, not an estimate
    found.pop("anomaly_threshold", None)
    return found


def compare_baseline(
    baseline: RunModel | None,
    run: RunModel,
    examples: Examples,
    scored: Scored,
    request: EvaluationRequest,
    say: Status,
) -> BaselineResult | None:
    """Score the baseline run on the same examples and compare the key and gated metrics.

    Args:
        baseline: the opened baseline run, or None (nothing to compare).
        run: the run being evaluated.
        examples: the examples both are scored on.
        scored: the run's scores.
        request: the evaluation's settings (tolerance, gates).
        say: receives a line when the baseline is evaluated.

    Returns:
        The baseline's metrics and each comparison; None without a baseline.
    """
    if baseline is None:
        return None
    spec = request.spec
    say(f"Evaluating the baseline {baseline.run_dir.name} on the same examples")
    base_model = baseline.load_keras()
    base_outputs = examples.outputs(lambda x: model_outputs(baseline, base_model, x, request))
    base_threshold = None
    if baseline.task in ("binary", "reconstruction"):
        base_threshold = read_stored_threshold(baseline.run_dir)
    base = score(baseline, examples, base_outputs, spec, base_threshold).report
    comparisons = compare_with_baseline(
        compared_metrics(run.task, request.gates),
        scored.report.metrics,
        base.metrics,
        spec.tolerance,
        (scored.report.per_class or [], base.per_class or []),
    )
    return BaselineResult(baseline.run_dir, spec.tolerance, base.metrics, comparisons)
