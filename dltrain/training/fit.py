"""One training run: prepared data + recipe → a self-describing, resumable run folder."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from dltrain.atomic import atomic_path, write_text_atomic
from dltrain.backend import keras, tf
from dltrain.data.store import PreparedDataset
from dltrain.errors import RunError, TrainingFailed, TrainingInterrupted
from dltrain.faults import crash_point
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.models.saving import load_model
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.schema import TrainSpec
from dltrain.run_info import InputRecord, RunStatus, TrialMarker
from dltrain.runs import RunFolder
from dltrain.training.averaging import (
    AveragedWeights,
    averaging,
    recompute_batch_norm,
    refuse_averaging,
    resume_averages,
)
from dltrain.training.calibrate import calibrate
from dltrain.training.callbacks import DivergenceGuard, EpochStats, ProgressDisplay, TimeBudget
from dltrain.training.checkpoints import (
    EpochCheckpoint,
    ResumableEarlyStopping,
    best_weights,
    monitor_mode,
    stop_reason,
)
from dltrain.training.compile import CompileParts, compile_parts
from dltrain.training.finish import TrainResult, close_run, finish_resumed
from dltrain.training.hooks import Phase, TrainingHooks
from dltrain.training.inputs import input_batches
from dltrain.training.multiworker import fit as fit_multiworker
from dltrain.training.multiworker import weights_digest
from dltrain.training.plan import RunPlan, configure_tensorflow, plan_run
from dltrain.training.record import (
    RunRecord,
    best_epoch,
    open_run_record,
    read_history,
    read_outcome,
    record_interruption,
)
from dltrain.training.schedules import ReduceOnPlateau
from dltrain.training.tracking import MlflowEpochs, end_tracking, start_tracking

if TYPE_CHECKING:
    from dltrain.run_info import MlflowRef


def train(
    loaded: LoadedRecipe,
    workdir: Path,
    console: Console,
    *,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    resume_dir: Path | None = None,
    trial: bool = False,
    tune: TrialMarker | None = None,
    dataset: PreparedDataset | None = None,
    run_dir: Path | None = None,
    tracking_parent: MlflowRef | None = None,
) -> TrainResult:
    """Train the recipe's model on its prepared dataset into a run folder.

    A new run writes the resolved recipe and the environment before training starts. Every
    epoch leaves a checkpoint, so an interrupted run (Ctrl-C, ``kill -9``) continues with
    ``resume_dir`` from its last completed epoch, optimizer state and schedule position intact.
    The final model is written atomically, so a run folder with ``model.keras`` is finished.
    A resumed run whose training was over when it was killed (while saving its model or
    closing run.json) is finished from its checkpoints without training.
    Where model families differ (labels, compilation, phases, callbacks), the family's
    ``TrainingHooks`` (training/hooks.py) decide.

    Args:
        loaded: the validated recipe (for a resume, the run's own recipe.yaml).
        workdir: the folder holding data/ and runs/.
        console: where the progress display draws.
        extra_callbacks: run after dltrain's own, so their logs carry ``learning_rate`` and
            ``epoch_seconds`` (a tuner's pruning callback goes here).
        resume_dir: an unfinished run to continue instead of starting a new one.
        trial: a ``dltrain tune`` trial. It writes only what the tuner and a later
            ``evaluate --run`` read (recipe.yaml, run.json, history.csv, the model): no
            per-epoch checkpoints, TensorBoard, learning curves or model summary, which would
            cost a trial pruned after one short epoch more than its training (the winner is
            trained again, with everything, from best.yaml). It runs on one machine only.
        tune: a trial's marker, written into run.json before training starts (which study
            and trial it is), so commands looking for the user's latest run pass it by.
        dataset: the data to train on instead of the recipe's prepared dataset (one fold of
            ``dltrain train --folds``: its training rows and held-out rows as the splits).
        run_dir: the folder a new run is made in instead of a new one under runs/ (a fold's,
            inside its cross-validation run).
        tracking_parent: the study's MLflow run: a trial logs to MLflow (a child run) only
            with one (``train.tracking: mlflow``; training/tracking.py).

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: settings that only show as wrong against the data (e.g. the monitor).
        RunError: ``resume_dir`` cannot be resumed.
        TrainingFailed: the loss diverged.
        TrainingInterrupted: Ctrl-C; the run can be resumed.
    """
    plan = plan_run(loaded, workdir, resume_dir, trial, dataset)
    if plan.finishing:
        return finish_resumed(plan, workdir, tune)
    configure_tensorflow(plan)
    # Everything that can still refuse the recipe or the data (loss, schedule, model family,
    # weights file, a shard changed since prepare) happens before the run folder exists, so a
    # refusal leaves nothing behind.
    model, parts = build_and_compile(plan)
    splits = load_batches(plan)
    record = open_run_record(plan, workdir, tune, run_dir)
    record.info.input = splits.input
    record.write()
    if not plan.trial:
        write_summary(model, record.files.summary)
    tracker = start_tracking(plan, record, workdir, tracking_parent)
    extra = [*extra_callbacks, MlflowEpochs(tracker)] if tracker else extra_callbacks
    watch = watch_training(plan, record.files, parts, console, extra)
    try:
        seconds = fit_phases(plan, model, parts, watch, splits, record)
        check_converged(plan, watch, record)
        if plan.spec.swa.enabled:  # the average's own batch-norm statistics, before saving
            recompute_batch_norm(model, splits.train)
        result = finish(plan, model, watch, record, seconds)
    except BaseException as exc:
        killed = isinstance(exc, KeyboardInterrupt | TrainingInterrupted)
        end_tracking(tracker, record, "KILLED" if killed else "FAILED")
        raise
    tracked = end_tracking(tracker, record)
    return replace(result, warnings=(*result.warnings, *tracked)) if tracked else result


@dataclass(frozen=True)
class Splits:
    """The batches training fits on and validates with, and how they were read."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    input: InputRecord


@dataclass(frozen=True)
class Watchers:
    """The callbacks of a run, with the ones whose verdicts training reads afterwards."""

    callbacks: list[keras.callbacks.Callback]
    guard: DivergenceGuard
    stopper: ResumableEarlyStopping | None
    budget: TimeBudget | None

    @property
    def halted(self) -> bool:
        """Whether training must not go on: the loss diverged or the time budget ran out."""
        return self.guard.diverged_at is not None or bool(self.budget and self.budget.exhausted)


def build_and_compile(plan: RunPlan) -> tuple[keras.Model, CompileParts]:
    """Build and compile the family's model, or restore the resumed run's last checkpoint.

    A resumed model is compiled from the recipe, as the uninterrupted run was at this epoch,
    never from the compile settings Keras saved in the checkpoint: Keras leaves some out (a
    Huber loss's ``delta``, a GAN's second optimizer), and the run would go on with others.

    Args:
        plan: the run's plan.

    Returns:
        The model, compiled, and the parts ``fit`` needs (callbacks, class weights).

    Raises:
        RecipeError: a loss, schedule, class weighting or model that does not fit the data.
        RunError: the resumed run's checkpoint does not fit its recipe.
    """
    dataset = plan.dataset
    # a run resumed in a later phase (fine-tuning) compiles with that phase's settings
    train = plan.hooks.phases(plan.spec, plan.initial_epoch)[0].train
    refuse_averaging(plan.hooks, plan.spec, plan.recipe.model.family)
    with plan.devices.strategy.scope():
        parts = compile_parts(
            train,
            plan.task,
            dataset.manifest,
            plan.steps_per_epoch,
            soft_labels=plan.hooks.soft_labels,
        )
        if plan.state is not None:
            assert plan.resume_dir is not None
            checkpoint = RunFolder(plan.resume_dir).checkpoints / plan.state.checkpoint
            model = restore_checkpoint(plan.hooks, checkpoint, parts, train)
            resume_averages(model, plan.hooks, plan.spec, plan.initial_epoch)
        else:
            model = build_model(plan.recipe.model, ModelIO(dataset.manifest))
            plan.hooks.compile(model, parts, train)
    if plan.devices.jit_compile is not None:
        model.jit_compile = plan.devices.jit_compile
    return model, parts


def restore_checkpoint(
    hooks: TrainingHooks, checkpoint: Path, parts: CompileParts, train: TrainSpec
) -> keras.Model:
    """A checkpoint's model, compiled as the recipe says, with its optimizers' state restored.

    Args:
        hooks: how the model's family compiles and builds its optimizers.
        checkpoint: the ``.keras`` file an epoch ended with.
        parts: the optimizer, loss and metrics made from ``train``.
        train: the settings the model trains under from here on.

    Returns:
        The model, its weights, optimizer steps and moments as they were after that epoch.

    Raises:
        RunError: the checkpoint cannot be read, or its optimizer state does not fit.
    """
    try:
        model = load_model(checkpoint, compile=False)
        hooks.compile(model, parts, train)
        hooks.build_optimizers(model)
        # Weights again, and with them every optimizer's variables (steps, moments), which
        # the weights file of a .keras checkpoint holds under each optimizer's attribute name.
        model.load_weights(checkpoint)
    except ValueError as exc:
        raise RunError(
            f"Checkpoint {checkpoint} cannot be resumed under its run's recipe ({exc}). The "
            f"checkpoint or recipe.yaml beside it was changed since training wrote them. Start "
            f"a new run with `dltrain train`."
        ) from None
    return model


def load_batches(plan: RunPlan) -> Splits:
    """The training and validation batches, labelled as the model's family learns.

    In memory or streamed from the shards, as ``train.input`` and the data's size decide
    (data/streaming.py ``choose_input``).

    Args:
        plan: the run's plan.

    Returns:
        Training batches reshuffled every epoch, validation batches in order.
    """
    train, validation, record = input_batches(plan)
    batches = int(train.cardinality())
    if batches != plan.steps_per_epoch:
        # The schedule was built for plan.steps_per_epoch: training on another count would end
        # it early (cosine at zero two-thirds in) or never reach its end.
        raise RuntimeError(
            f"The training pipeline yields {batches} batches per epoch, but the run was planned "
            f"for {plan.steps_per_epoch}; this is a dltrain bug, please report it."
        )
    return Splits(train=train, validation=validation, input=record)


def write_summary(model: keras.Model, path: Path) -> None:
    """Write Keras's summary of ``model`` (layers, shapes, parameters) as text.

    Args:
        model: the built model.
        path: the file to write.
    """
    summary: list[str] = []
    model.summary(print_fn=lambda line, **_: summary.append(line))
    write_text_atomic(path, "\n".join(summary) + "\n")


def watch_training(
    plan: RunPlan,
    files: RunFolder,
    parts: CompileParts,
    console: Console,
    extra_callbacks: Sequence[keras.callbacks.Callback],
) -> Watchers:
    """The run's callbacks, in the order they must run.

    Args:
        plan: the run's plan.
        files: the run folder they write into.
        parts: the compile parts, whose callbacks run after the logger of the learning rate.
        console: where the progress display draws.
        extra_callbacks: the caller's, run last.

    Returns:
        The callbacks, and the guard, early stopper and time budget among them.
    """
    spec = plan.spec
    guard = DivergenceGuard()
    averager = AveragedWeights.for_run(spec) if averaging(spec) else None
    callbacks: list[keras.callbacks.Callback] = [
        *([averager] if averager else []),  # first: the epoch's end sees the averaged weights
        guard,
        EpochStats(),
        keras.callbacks.CSVLogger(str(files.history), append=plan.state is not None),
        ProgressDisplay(
            console,
            epochs=spec.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            batch_size=spec.batch_size,
        ),
        *parts.callbacks,
    ]
    if spec.tensorboard and not plan.trial:
        callbacks.append(keras.callbacks.TensorBoard(str(files.tensorboard), profile_batch=0))
    stopper = early_stopping(plan, files.path)
    if stopper is not None:
        callbacks.append(stopper)
    plateau = next((c for c in parts.callbacks if isinstance(c, ReduceOnPlateau)), None)
    if plateau is not None and plan.state is not None and plan.state.reduce_on_plateau:
        plateau.resume_from(plan.state.reduce_on_plateau)
    budget = TimeBudget(spec.time_budget) if spec.time_budget else None
    if not plan.trial:
        checkpoint_monitor = spec.early_stopping.monitor if stopper is not None else "val_loss"
        callbacks.append(
            EpochCheckpoint(
                files.path,
                checkpoint_monitor,
                spec.early_stopping.mode,
                stopper,
                plateau,
                budget,
            )
        )
    callbacks.extend(plan.hooks.callbacks(files, plan.dataset))
    if budget is not None:
        callbacks.append(budget)
    callbacks.extend(extra_callbacks)
    if averager is not None:
        callbacks.append(averager.swap_back)  # last: training goes on from the trained weights
    return Watchers(callbacks, guard, stopper, budget)


def early_stopping(plan: RunPlan, run_dir: Path) -> ResumableEarlyStopping | None:
    """The recipe's early stopping, taking up where a resumed run left it; None when off.

    Args:
        plan: the run's plan.
        run_dir: the run folder, holding a resumed run's best weights.
    """
    es = plan.spec.early_stopping
    if not es.enabled:
        return None
    resumed = plan.state.early_stopping if plan.state else None
    if resumed is not None:
        resumed = replace(resumed, best_weights=best_weights(run_dir))
    return ResumableEarlyStopping(
        monitor=es.monitor,
        mode=monitor_mode(es.monitor, es.mode),
        patience=es.patience,
        min_delta=es.min_delta,
        start_from_epoch=es.start_epoch,
        restore_best_weights=es.restore_best_weights,
        resume_from=resumed,
    )


def fit_phases(
    plan: RunPlan,
    model: keras.Model,
    parts: CompileParts,
    watch: Watchers,
    splits: Splits,
    record: RunRecord,
) -> float:
    """Fit through the family's phases, one history across them; returns the seconds taken.

    A phase after the first starts only while training may go on (no divergence, time left).

    Args:
        plan: the run's plan.
        model: the compiled model.
        parts: the compile parts (class weights).
        watch: the run's callbacks.
        splits: the batches to fit and validate on.
        record: the run's record, marked interrupted on Ctrl-C.

    Raises:
        TrainingInterrupted: Ctrl-C; the run can be resumed.
    """
    # Keras 3's fit fails across machines (keras-team/keras#20585); our loop takes its place.
    devices = plan.devices
    run_fit = (
        model.fit if devices.cluster is None else partial(fit_multiworker, model, devices.strategy)
    )
    started = time.perf_counter()
    epoch = plan.initial_epoch
    try:
        for index, phase in enumerate(plan.hooks.phases(plan.spec, plan.initial_epoch)):
            if index > 0:
                if watch.halted:
                    break
                start_phase(plan, model, phase, watch)
            run_fit(
                splits.train,
                validation_data=splits.validation,
                epochs=phase.end,
                initial_epoch=epoch,
                callbacks=watch.callbacks,
                class_weight=parts.class_weight,
                verbose=0,
                shuffle=False,  # the input pipeline already reshuffles every epoch
            )
            epoch = phase.end
    except KeyboardInterrupt:
        raise record_interruption(plan, record) from None
    return time.perf_counter() - started


def start_phase(plan: RunPlan, model: keras.Model, phase: Phase, watch: Watchers) -> None:
    """Ready the model for a later phase: change it, compile it anew, carry the callbacks on.

    Args:
        plan: the run's plan.
        model: the model the earlier phase trained.
        phase: the phase about to start.
        watch: the run's callbacks, which go on as if through one ``fit``.
    """
    if phase.prepare is not None:
        phase.prepare(model)
    dataset = plan.dataset
    with plan.devices.strategy.scope():
        parts = compile_parts(
            phase.train,
            plan.task,
            dataset.manifest,
            plan.steps_per_epoch,
            soft_labels=plan.hooks.soft_labels,
        )
        plan.hooks.compile(model, parts, phase.train)
    _continue_callbacks(watch.callbacks, watch.stopper)


def check_converged(plan: RunPlan, watch: Watchers, record: RunRecord) -> None:
    """Refuse a run whose loss diverged, marking it so in run.json.

    Args:
        plan: the run's plan.
        watch: the run's callbacks (the divergence guard).
        record: the run's record.

    Raises:
        TrainingFailed: the loss became NaN or infinite.
    """
    if watch.guard.diverged_at is None:
        return
    epoch, batch = watch.guard.diverged_at
    record.write(status=RunStatus.DIVERGED)
    best = record.files.best_checkpoint
    kept = f" The best epoch so far is kept in {best}." if best.is_file() else ""
    raise TrainingFailed(
        f"Training diverged at epoch {epoch}, batch {batch}: the loss became NaN or infinite."
        f"{kept} Lower the learning rate (now {plan.spec.optimizer.learning_rate}), add gradient "
        f"clipping (--set train.optimizer.clipnorm=1.0), or check the data for extreme values."
    )


def finish(
    plan: RunPlan, model: keras.Model, watch: Watchers, record: RunRecord, seconds: float
) -> TrainResult:
    """Save the model and the learning curves, and close run.json as completed.

    Args:
        plan: the run's plan.
        model: the trained model (the best epoch's weights when early stopping restored them).
        watch: the run's callbacks.
        record: the run's record.
        seconds: how long fitting took.

    Returns:
        The run's result.
    """
    files = record.files
    model, calibration = calibrate(plan, model)
    if calibration is not None:
        record.info.calibration = calibration
    with atomic_path(files.model) as tmp:
        model.save(tmp)
        crash_point("train.model")
    stopper = watch.stopper
    outcome = read_outcome(
        read_history(files.history),
        best_epoch(stopper.monitor, stopper.state()) if stopper else None,
        stop_reason(stopper, watch.budget),
    )
    digest = weights_digest(model)  # recorded on every run: `dltrain verify` checks it
    return close_run(plan, record, outcome, seconds, digest, int(model.count_params()))


def _continue_callbacks(
    callbacks: list[keras.callbacks.Callback], stopper: ResumableEarlyStopping | None
) -> None:
    """Let callbacks run on through a second ``fit`` as if it were the same one."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.CSVLogger):
            callback.append = True  # a second fit must not start history.csv afresh
    if stopper is not None and stopper.best is not None:
        # patience starts anew for fine-tuning; the best epoch so far still counts
        stopper.resume_from(replace(stopper.state(), wait=0, best_weights=stopper.best_weights))
