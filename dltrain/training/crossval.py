"""``dltrain train --folds K``: K-fold cross-validation into one run folder.

The cross-validated run is an ordinary run folder under runs/<recipe>/ (recipe.yaml, manifest.json,
run.json, model.keras), so ``evaluate``, ``predict``, ``export`` and ``runs`` take it as they take
any run; its folds are whole run folders of their own inside it, ``folds/fold-<k>/``, each trained
by the same ``train()`` on one fold's rows, so "the latest run" stays the user's run and not a
fold. The saved model averages the K fold models' outputs and takes the raw inputs each of them
takes. ``cross_validation.json`` holds each fold's held-out metrics and their mean ± sd.

The folds cut the training and validation rows (``data/folds.py``); the test split is never
read. Each fold validates on the rows it holds out, so its early stopping watched them: with
early stopping on, the out-of-fold figures lean optimistic, and the test split stays the honest
measure. The preprocessing fitted by ``prepare`` (scaling, vocabularies) is the training split's,
shared by every fold.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from dltrain.atomic import atomic_path, write_json_atomic
from dltrain.backend import keras
from dltrain.data.folds import (
    Fold,
    FoldMethod,
    FoldRequest,
    assign_folds,
    choose_method,
    pool_splits,
    take_rows,
)
from dltrain.data.store import Features, PreparedDataset, resample_rows
from dltrain.errors import TrainingFailed, TrainingInterrupted, UsageError
from dltrain.evaluation.run_model import open_run
from dltrain.faults import crash_point
from dltrain.manifest import FeatureKind, Manifest, Sampling
from dltrain.models import family_task
from dltrain.models.saving import load_model
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.data import SplitMethod
from dltrain.recipe.schema import EvaluateSpec, Recipe
from dltrain.run_info import RunStatus, StopReason, TrialMarker
from dltrain.runs import RunFolder
from dltrain.tasks import Task
from dltrain.training.fit import train
from dltrain.training.plan import RunPlan, plan_run
from dltrain.training.record import (
    Outcome,
    RunRecord,
    complete_record,
    open_run_record,
    read_history,
)

SCHEMA_VERSION = 1


@dataclass
class FoldData(PreparedDataset):
    """The prepared dataset as one fold sees it: its training rows and its held-out rows are
    the training and validation splits; the test split is the prepared one, untouched."""

    pool_x: Features
    pool_y: np.ndarray
    fold: Fold

    def num_examples(self, split: str, *, resample: bool = True) -> int:
        if split in ("train", "validation"):
            return len(self.load_split(split, resample=resample)[1])
        return super().num_examples(split, resample=resample)

    def load_split(self, split: str, *, resample: bool = True) -> tuple[Features, np.ndarray]:
        if split == "validation":
            rows = self.fold.held_out
        elif split == "train":
            rows = self.fold.train
            sampling = self.manifest.sampling
            if resample and sampling != Sampling.NONE:  # as the prepared split is resampled
                rows = rows[resample_rows(self.pool_y[rows], sampling, self.manifest.seed)]
        else:
            return super().load_split(split, resample=resample)
        return take_rows(self.pool_x, rows), self.pool_y[rows]


@dataclass(frozen=True)
class FoldResult:
    """One fold's run and how its model did on the rows it held out."""

    number: int
    run_dir: Path
    train_examples: int
    held_out_examples: int
    epochs_run: int
    epoch: int  # 1-based epoch whose weights the fold's model holds
    metrics: dict[str, float]  # held-out metrics at that epoch (Keras's names without val_)
    seconds: float
    warnings: tuple[str, ...] = ()  # the fold run's own (the best epoch was the last, …)


@dataclass(frozen=True)
class CrossValidation:
    """What ``cross_validate`` did: the folds, their mean ± sd, and the averaged model's run."""

    run_dir: Path
    method: FoldMethod
    folds: list[FoldResult]
    mean: dict[str, float]
    sd: dict[str, float]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Each fold run's warnings, named by fold."""
        return [f"fold {f.number}: {w}" for f in self.folds for w in f.warnings]

    def to_json(self) -> dict[str, Any]:
        """The document ``cross_validation.json`` holds and ``train --folds --json`` prints."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run": str(self.run_dir),
            "method": self.method.value,
            "num_folds": len(self.folds),
            "folds": [
                {
                    "fold": f.number,
                    "run": str(f.run_dir.relative_to(self.run_dir)),
                    "train_examples": f.train_examples,
                    "held_out_examples": f.held_out_examples,
                    "epochs_run": f.epochs_run,
                    "epoch": f.epoch,
                    "metrics": f.metrics,
                    "seconds": round(f.seconds, 2),
                }
                for f in self.folds
            ],
            "summary": {k: {"mean": self.mean[k], "sd": self.sd[k]} for k in self.mean},
            "warnings": self.warnings,
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class FoldOptions:
    """What a caller adds to each fold's training.

    Attributes:
        announce: called with each fold and K before the fold trains (the CLI says which).
        callbacks: each fold's extra callbacks (a tune trial's objective reporter).
        trial: train as a ``dltrain tune`` trial (``train(trial=True)``: light run folders).
        tune: a trial's marker for the cross-validated run's run.json and its folds'.
    """

    announce: Callable[[Fold, int], None] | None = None
    callbacks: Callable[[Fold], Sequence[keras.callbacks.Callback]] | None = None
    trial: bool = False
    tune: TrialMarker | None = None


def cross_validate(
    loaded: LoadedRecipe,
    workdir: Path,
    console: Console,
    options: FoldOptions | None = None,
) -> CrossValidation:
    """Train ``train.folds`` fold runs into one run folder, and save their averaged model.

    Args:
        loaded: the validated recipe, ``train.folds`` set.
        workdir: the folder holding data/ and runs/.
        console: where each fold's progress display draws.
        options: what the caller adds to each fold's training.

    Returns:
        The folds' results and their summary.

    Raises:
        UsageError: a model family that does not predict the data's target, or a cluster.
        DataError: no usable prepared dataset, or too few examples for the folds.
        TrainingFailed: a fold's loss diverged.
        TrainingInterrupted: Ctrl-C.
    """
    options = options or FoldOptions()
    plan = plan_run(loaded, workdir, None, options.trial)
    _check_supported(plan)
    pool = pool_splits(
        plan.dataset.load_split("train", resample=False), plan.dataset.load_split("validation")
    )
    method, request, notes = fold_request(loaded.recipe, plan.dataset.manifest, plan.task, pool)
    folds = assign_folds(len(pool[1]), request)
    record = open_run_record(plan, workdir, options.tune)
    started = time.perf_counter()
    trained = [
        _train_fold(
            loaded, workdir, console, _FoldJob(plan, pool, fold, len(folds), record), options
        )
        for fold in folds
    ]
    results = [result for result, _ in trained]
    mean, sd = summarize([r.metrics for r in results])
    model = average_models([fold_model for _, fold_model in trained])
    files = record.files
    seconds = time.perf_counter() - started
    result = CrossValidation(files.path, method, results, mean, sd, seconds, notes)
    write_json_atomic(files.cross_validation, result.to_json())
    with atomic_path(files.model) as tmp:  # last: a run holding its model is finished
        model.save(tmp)
        crash_point("train.model")
    # run.json's `final` holds the folds' mean held-out metrics, named as validation metrics
    held_out = {f"val_{k}": v for k, v in mean.items()}
    outcome = Outcome(max(r.epochs_run for r in results), held_out, None, StopReason.EPOCHS)
    complete_record(record, outcome, seconds, None, int(model.count_params()))
    return result


def fold_request(
    recipe: Recipe, manifest: Manifest, task: Task, pool: tuple[Features, np.ndarray]
) -> tuple[FoldMethod, FoldRequest, list[str]]:
    """How the recipe's data is cut into ``train.folds`` folds, and what the user should know.

    Args:
        recipe: the recipe, ``train.folds`` set.
        manifest: the prepared dataset's manifest.
        task: what the model learns.
        pool: the training and validation rows, pooled.

    Returns:
        The method, the request for ``assign_folds`` and notes for the user.
    """
    assert recipe.train.folds is not None
    x, y = pool
    split = recipe.data.split
    notes: list[str] = []
    groups = None
    if split.method == SplitMethod.GROUP and split.column:
        if isinstance(x, dict) and split.column in x:
            groups = x[split.column]
        else:
            notes.append(
                f"The data is split by group column {split.column!r}, which is not among the "
                f"model's inputs, so the folds cannot keep its groups together."
            )
    time_ordered = manifest.features.kind == FeatureKind.SEQUENCE or (
        split.method == SplitMethod.TIME
    )
    classification = task.is_classification and y.ndim == 1
    method = choose_method(
        classification=classification, time_ordered=time_ordered, grouped=groups is not None
    )
    horizon = getattr(manifest.target, "horizon", None) or 1  # a forecast's NumericTarget
    gap = horizon - 1
    request = FoldRequest(
        num_folds=recipe.train.folds,
        seed=recipe.seed,
        method=method,
        labels=y if classification else None,
        groups=groups,
        gap=gap,
    )
    return method, request, notes


@dataclass(frozen=True)
class _FoldJob:
    """One fold to train: the cross-validated run's plan and record, the pool, the fold."""

    plan: RunPlan
    pool: tuple[Features, np.ndarray]
    fold: Fold
    num_folds: int
    record: RunRecord


def _train_fold(
    loaded: LoadedRecipe, workdir: Path, console: Console, job: _FoldJob, options: FoldOptions
) -> tuple[FoldResult, keras.Model]:
    """Train one fold into its own run folder inside the cross-validated run's; return what it
    did and its saved model (read once: scored here, averaged by the caller)."""
    fold, record, dataset = job.fold, job.record, job.plan.dataset
    if options.announce is not None:
        options.announce(fold, job.num_folds)
    view = FoldData(
        folder=dataset.folder,
        manifest=dataset.manifest,
        pool_x=job.pool[0],
        pool_y=job.pool[1],
        fold=fold,
    )
    run_dir = record.files.fold(fold.number)
    try:
        trained = train(
            loaded,
            workdir,
            console,
            extra_callbacks=options.callbacks(fold) if options.callbacks else (),
            trial=options.trial,
            tune=options.tune,
            dataset=view,
            run_dir=run_dir,
        )
    except TrainingInterrupted:
        record.write(status=RunStatus.INTERRUPTED)
        raise TrainingInterrupted(
            f"Cross-validation stopped at your request during fold {fold.number} of "
            f"{job.num_folds}; {record.run_dir} has no averaged model. Start it again with "
            f"`dltrain train --folds {job.num_folds}`."
        ) from None
    except TrainingFailed:
        record.write(status=RunStatus.DIVERGED)
        raise
    epoch = _kept_epoch(job.plan, trained.best_epoch, trained.epochs_run)
    metrics = held_out_metrics(read_history(RunFolder(run_dir).history), epoch)
    model = load_model(RunFolder(run_dir).model, compile=False)
    if not options.trial:  # a tune trial is scored by its objective alone
        held_out = view.load_split("validation")
        scores = held_out_scores(run_dir, model, held_out, loaded.recipe.evaluate)
        metrics |= {k: v for k, v in scores.items() if k not in metrics}
    keras.backend.clear_session()  # the next fold builds its own graph; free this one's
    result = FoldResult(
        number=fold.number,
        run_dir=run_dir,
        train_examples=len(fold.train),
        held_out_examples=len(fold.held_out),
        epochs_run=trained.epochs_run,
        epoch=epoch,
        metrics=metrics,
        seconds=trained.seconds,
        warnings=trained.warnings,
    )
    return result, model


def _kept_epoch(plan: RunPlan, best_epoch: int | None, epochs_run: int) -> int:
    """The epoch whose weights a fold's saved model holds: the best one when early stopping
    restored it, else the last."""
    es = plan.spec.early_stopping
    if es.enabled and es.restore_best_weights and best_epoch is not None:
        return best_epoch
    return epochs_run


def held_out_metrics(history: list[dict[str, float]], epoch: int) -> dict[str, float]:
    """A fold's validation metrics at ``epoch`` (1-based), named without Keras's ``val_``.

    Args:
        history: the fold's history.csv rows.
        epoch: the epoch whose weights its model holds.

    Example:
        >>> held_out_metrics([{"loss": 1.0, "val_loss": 2.0}, {"val_loss": 1.5}], 1)
        {'loss': 2.0}
    """
    row = history[epoch - 1]
    return {k.removeprefix("val_"): v for k, v in row.items() if k.startswith("val_")}


# evaluate's headline metrics that a fold's table adds to Keras's (loss, accuracy, mae, rmse),
# by task: a binary classifier's bar is often its positive class's F1, which Keras does not
# log, and a forecast's is its error against the naive last-value forecast
ADDED_METRICS: dict[Task, tuple[str, ...]] = {
    Task.BINARY: ("f1", "precision", "recall", "roc_auc"),
    Task.MULTICLASS: ("f1_macro",),
    Task.REGRESSION: ("r2",),
    Task.FORECASTING: ("mae_ratio_to_naive",),
}


def held_out_scores(
    run_dir: Path, model: keras.Model, held_out: tuple[Features, np.ndarray], spec: EvaluateSpec
) -> dict[str, float]:
    """The task's ``ADDED_METRICS`` of a fold's saved model on the rows it held out, as evaluate
    scores them (a binary classifier at the default threshold 0.5).

    Args:
        run_dir: the fold's finished run folder.
        model: its saved model, loaded.
        held_out: the fold's held-out inputs and targets.
        spec: the recipe's evaluation settings (batch size, calibration bins).
    """
    from dltrain.evaluation.evaluate import score
    from dltrain.evaluation.examples import Examples

    run = open_run(run_dir)
    x, y = held_out
    outputs = run.predict(model, x, spec.batch_size)
    examples = Examples(x, y, "held_out", {"kind": "fold", "run": str(run_dir)})
    headline = score(run, examples, outputs, spec, None).report.metrics
    names = ADDED_METRICS.get(Task(run.task), ())
    return {k: float(v) for k in names if (v := headline.get(k)) is not None}


def summarize(metrics: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """The mean and sample standard deviation of each metric every fold has.

    Example:
        >>> summarize([{"loss": 1.0}, {"loss": 3.0}])
        ({'loss': 2.0}, {'loss': 1.4142135623730951})
    """
    names = [k for k in metrics[0] if all(k in m for m in metrics)]
    mean = {k: statistics.fmean(m[k] for m in metrics) for k in names}
    sd = {k: statistics.stdev(m[k] for m in metrics) if len(metrics) > 1 else 0.0 for k in names}
    return mean, sd


def average_models(models: list[keras.Model]) -> keras.Model:
    """One model taking the fold models' raw inputs and answering the mean of their outputs.

    Args:
        models: the trained fold models, built alike (same inputs, same outputs).

    Returns:
        The averaging model (uncompiled); each fold model is a layer of it, weights and all.
    """
    first = models[0]
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name.split(":")[0]),
        first.input,
    )
    for k, model in enumerate(models, start=1):
        model.name = f"fold{k}"  # layer names must differ inside one model
    outputs = [model(inputs) for model in models]
    if isinstance(outputs[0], dict):
        mean: Any = {
            key: keras.layers.Average(name=f"fold_mean_{key}")([o[key] for o in outputs])
            for key in outputs[0]
        }
    elif isinstance(outputs[0], list | tuple):
        mean = [
            keras.layers.Average(name=f"fold_mean_{i}")([o[i] for o in outputs])
            for i in range(len(outputs[0]))
        ]
    else:
        mean = keras.layers.Average(name="fold_mean")(outputs)
    return keras.Model(inputs, mean, name="cross_validated")


def _check_supported(plan: RunPlan) -> None:
    """Refuse what K-fold cross-validation cannot do.

    Raises:
        UsageError: a model family that learns something other than the data's target, or a
            cluster of TF_CONFIG workers.
    """
    family = plan.recipe.model.family
    if family_task(family) is not None:
        raise UsageError(
            f"`train.folds` is {plan.spec.folds}, but the {family} family learns "
            f"{family_task(family)}, not the data's target, so there are no held-out metrics to "
            f"cross-validate. Remove train.folds (or --folds) for this recipe."
        )
    if plan.devices.cluster is not None:
        raise UsageError(
            "Cross-validation (--folds) trains on one machine: unset TF_CONFIG, or train "
            "without --folds across the workers."
        )
