"""What an evaluation is asked to do, and the checks that refuse a request before any model runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.errors import RunError, UsageError
from dltrain.evaluation.catalog import task_metrics
from dltrain.evaluation.gates import check_gate_names
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.evaluation.threshold import ThresholdObjective
from dltrain.manifest import FeatureKind
from dltrain.recipe.choices import InputMode
from dltrain.recipe.gates import Gate
from dltrain.recipe.schema import EvaluateSpec


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
        tta: image classifiers: views of each image whose probabilities are averaged
            (evaluation/tta.py); 1: the image alone. The baseline run and the threshold
            choice on the validation split see the images alone.
        input: the recipe's ``train.input``: whether a table or image predictor's split is read
            into memory or streamed shard by shard (``auto``: by its size; evaluation/examples.py
            ``choose_evaluation_input``).
    """

    run_dir: Path
    spec: EvaluateSpec = field(default_factory=EvaluateSpec)
    seed: int = 0
    data: Path | None = None
    gates: tuple[Gate, ...] = ()
    optimize_threshold: ThresholdObjective | None = None
    baseline: Path | None = None
    tta: int = 1
    input: InputMode = InputMode.AUTO


def known_metrics(run: RunModel, spec: EvaluateSpec) -> list[str]:
    """Every headline metric name an evaluation of ``run`` reports."""
    infos = task_metrics(run.task, num_classes=len(run.classes), top_k=spec.top_k)
    return [info.name for info in infos]


IMPORTANCE_TASKS = ("binary", "multiclass", "regression")


def check_importance(run: RunModel) -> None:
    """Refuse permutation importance of a model whose inputs are not table columns.

    Raises:
        UsageError: an image, text or series model, or a table model that predicts no target
            (an autoencoder).
    """
    kind = run.manifest.features.kind
    if kind is FeatureKind.TABLE and run.task in IMPORTANCE_TASKS:
        return
    reason = (
        f"its inputs are {kind.value} inputs, not table columns"
        if kind is not FeatureKind.TABLE
        else f"it is a {run.task} model, with no target whose score a shuffle could move"
    )
    raise UsageError(
        f"--importance (evaluate.importance) measures how much a table model's score drops "
        f"when each input column is shuffled, but run {run.run_dir.name} cannot be measured "
        f"so: {reason}. Drop --importance; it works for classifiers and regressors trained on "
        f"tables."
    )


def check_request(
    request: EvaluationRequest, run: RunModel, baselines: Sequence[str] = ()
) -> RunModel | None:
    """Refuse what cannot work before any model runs; returns the opened baseline run.

    Args:
        request: what to evaluate.
        run: the opened run.
        baselines: the baselines (prior, gbm, …) the evaluation will score, which gates may
            name.

    Raises:
        UsageError: unknown gate metric or baseline, a threshold asked of a non-binary model,
            --data with --split, --tta for a run that does not allow it.
        RunError: a baseline that does not match.
    """
    check_gate_names(request.gates, known_metrics(run, request.spec), run.classes, baselines)
    run.tta_views(request.tta)
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
    if request.spec.importance:
        check_importance(run)
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
