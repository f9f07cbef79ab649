"""One training run: prepared data + recipe → a self-describing, resumable run folder."""

from __future__ import annotations

import csv
import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from dltrain import __version__
from dltrain.backend import keras, tf
from dltrain.data.pipeline import make_dataset
from dltrain.data.prepare import data_spec_digest
from dltrain.data.store import PreparedDataset, open_store
from dltrain.errors import DataError, RecipeError, RunError, TrainingFailed, TrainingInterrupted
from dltrain.models import build_model, training_hooks
from dltrain.models.io import ModelIO
from dltrain.models.saving import load_model
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.schema import Recipe, TrainSpec
from dltrain.runs import (
    HISTORY_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    RECIPE_FILE,
    RUN_INFO_FILE,
    atomic_path,
    data_dir,
    new_run_dir,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from dltrain.tasks import Task
from dltrain.training.callbacks import DivergenceGuard, EpochStats, ProgressDisplay, TimeBudget
from dltrain.training.checkpoints import (
    BEST_FILE,
    CHECKPOINTS,
    EpochCheckpoint,
    ResumableEarlyStopping,
    best_weights,
    load_state,
    monitor_mode,
)
from dltrain.training.compile import CompileParts, compile_parts
from dltrain.training.curves import plot_learning_curves
from dltrain.training.device import DevicePlan, apply_precision, plan_devices
from dltrain.training.hooks import Phase, TrainingHooks
from dltrain.training.losses import logged_names
from dltrain.training.multiworker import check_supported, private_copy, scratch_root, weights_digest
from dltrain.training.multiworker import fit as fit_multiworker

CURVES_FILE = "learning_curves.png"
SUMMARY_FILE = "model_summary.txt"


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_run: int
    monitor: str | None
    best_epoch: int | None  # 1-based epoch whose weights the saved model holds
    best_value: float | None
    final_logs: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: str = "epochs"  # epochs | early_stopping | time_budget
    num_workers: int = 1  # machines training together (TF_CONFIG)
    chief: bool = True  # False: another worker wrote the run; run_dir was this one's scratch
    weights_sha256: str | None = None  # across workers: the same on each when in sync


def open_prepared(loaded: LoadedRecipe, workdir: Path) -> PreparedDataset:
    """The recipe's prepared dataset, refusing one prepared from a different data section.

    Raises:
        DataError: none prepared, or prepared with other settings.
    """
    recipe = loaded.recipe
    dataset = open_store(data_dir(workdir, recipe.name))
    if dataset.manifest.data_spec_digest != data_spec_digest(recipe.data, recipe.seed):
        raise DataError(
            f"The prepared dataset {dataset.folder} was made with a different data section or "
            f"seed than recipe {loaded.path} now has. Training on it would not be what the recipe "
            f"says; run `dltrain prepare` with the same recipe and flags first."
        )
    return dataset


def environment(seed: int, plan: DevicePlan, deterministic: bool) -> dict[str, Any]:
    """Versions, seed and device, so a run says how to reproduce it."""
    return {
        "seed": seed,
        "deterministic": deterministic,
        "device": plan.description,
        # None on one machine, so a resumed run does not keep a cluster it no longer has
        "distribution": {
            "strategy": "MultiWorkerMirroredStrategy",
            "num_workers": plan.cluster.num_workers,
            "task": {"type": plan.cluster.task_type, "index": plan.cluster.task_index},
        }
        if plan.cluster
        else None,
        "versions": {
            "dltrain": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def check_monitor(monitor: str, task: Task) -> None:
    """Refuse an early-stopping monitor that training will never log.

    Raises:
        RecipeError: unknown monitor.
    """
    known = logged_names(task)
    if monitor not in known:
        raise RecipeError(
            f"`train.early_stopping.monitor` is {monitor!r}, which training does not log for a "
            f"{task.value} task. Expected one of {', '.join(known)}."
        )


def unfinished_run(run_dir: Path) -> dict[str, Any]:
    """The checkpoint state of a run that can be resumed.

    Raises:
        RunError: the run finished already or never completed an epoch.
    """
    if (run_dir / MODEL_FILE).is_file():
        raise RunError(
            f"Run {run_dir} finished already (it has {MODEL_FILE}); there is nothing to resume. "
            f"Start a new run with `dltrain train`, or resume with more epochs only from a run "
            f"that was interrupted."
        )
    state = load_state(run_dir)
    if state is None:
        raise RunError(
            f"Run {run_dir} has no checkpoint: it stopped before finishing its first epoch. "
            f"Start a new run with `dltrain train`."
        )
    return state


def train(
    loaded: LoadedRecipe,
    workdir: Path,
    console: Console,
    *,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    resume_dir: Path | None = None,
    trial: bool = False,
    run_info: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train the recipe's model on its prepared dataset into a run folder.

    A new run writes the resolved recipe and the environment before training starts. Every
    epoch leaves a checkpoint, so an interrupted run (Ctrl-C, ``kill -9``) continues with
    ``resume_dir`` from its last completed epoch, optimizer state and schedule position intact.
    The final model is written atomically, so a run folder with ``model.keras`` is finished.
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
        run_info: entries added to a new run's run.json before training starts (a trial's
            ``tune``: which study and trial it is).

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: settings that only show as wrong against the data (e.g. the monitor).
        RunError: ``resume_dir`` cannot be resumed.
        TrainingFailed: the loss diverged.
        TrainingInterrupted: Ctrl-C; the run can be resumed.
    """
    plan = plan_run(loaded, workdir, resume_dir, trial)
    configure_tensorflow(plan)
    # Everything that can still refuse the recipe (loss, schedule, model family, weights file)
    # happens before the run folder exists, so a refusal leaves nothing behind.
    model, parts = build_and_compile(plan)
    record = open_run_record(plan, workdir, run_info)
    splits = load_batches(plan)
    if not plan.trial:
        write_summary(model, record.run_dir / SUMMARY_FILE)
    watch = watch_training(plan, record.run_dir, parts, console, extra_callbacks)
    seconds = fit_phases(plan, model, parts, watch, splits, record)
    check_converged(plan, watch, record)
    return finish(plan, model, watch, record, seconds)


@dataclass(frozen=True)
class RunPlan:
    """What one training run is, settled before anything is built or written.

    Attributes:
        loaded: the validated recipe.
        dataset: the prepared dataset it trains on.
        hooks: how the model's family trains.
        task: what the model learns (the family decides: the data's task for predictors).
        devices: where it trains.
        state: the checkpoint state of the run being resumed; None for a new run.
        initial_epoch: the epoch training starts from: the resumed run's epochs done, or 0.
        resume_dir: the run being resumed (on a worker other than the chief, its own copy).
        trial: a ``dltrain tune`` trial (see ``train``).
        steps_per_epoch: batches per epoch, which schedules count in.
    """

    loaded: LoadedRecipe
    dataset: PreparedDataset
    hooks: TrainingHooks
    task: Task
    devices: DevicePlan
    state: dict[str, Any] | None
    initial_epoch: int
    resume_dir: Path | None
    trial: bool
    steps_per_epoch: int

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    @property
    def spec(self) -> TrainSpec:
        return self.loaded.recipe.train


@dataclass(frozen=True)
class RunRecord:
    """The run folder training writes into, and its run.json as it stands."""

    run_dir: Path
    info: dict[str, Any]

    def write(self, status: str | None = None) -> None:
        """Write run.json; with ``status``, that status without changing the record's own."""
        info = self.info if status is None else {**self.info, "status": status}
        write_json_atomic(self.run_dir / RUN_INFO_FILE, info)


@dataclass(frozen=True)
class Splits:
    """The batches training fits on and validates with."""

    train: tf.data.Dataset
    validation: tf.data.Dataset


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


def plan_run(loaded: LoadedRecipe, workdir: Path, resume_dir: Path | None, trial: bool) -> RunPlan:
    """Open the data, ask the model's family how it trains, and refuse what cannot run.

    Args:
        loaded: the validated recipe.
        workdir: the folder holding data/ and runs/.
        resume_dir: an unfinished run to continue, or None.
        trial: a ``dltrain tune`` trial.

    Returns:
        The plan every later step follows.

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: an early-stopping monitor training does not log.
        RunError: ``resume_dir`` cannot be resumed, or has no epochs left to train.
        UsageError: the run cannot train across the ``TF_CONFIG`` workers.
    """
    recipe = loaded.recipe
    spec = recipe.train
    dataset = open_prepared(loaded, workdir)
    hooks = training_hooks(recipe.model)
    task = hooks.task(dataset)
    if spec.early_stopping.enabled:
        check_monitor(spec.early_stopping.monitor, task)
    state = unfinished_run(resume_dir) if resume_dir is not None else None
    initial_epoch = int(state["epoch"]) if state else 0
    if initial_epoch >= spec.epochs:
        raise RunError(
            f"Run {resume_dir} already completed {initial_epoch} of {spec.epochs} epochs. To train "
            f"it further, resume with more epochs: --epochs {initial_epoch + 5}."
        )
    check_supported(recipe, trial=trial)
    devices = plan_devices(spec)
    if resume_dir is not None and not devices.is_chief:
        resume_dir = private_copy(resume_dir)  # resume from the chief's run; write elsewhere
    steps_per_epoch = math.ceil(dataset.num_examples("train") / spec.batch_size)
    return RunPlan(
        loaded=loaded,
        dataset=dataset,
        hooks=hooks,
        task=task,
        devices=devices,
        state=state,
        initial_epoch=initial_epoch,
        resume_dir=resume_dir,
        trial=trial,
        steps_per_epoch=steps_per_epoch,
    )


def configure_tensorflow(plan: RunPlan) -> None:
    """Set precision, determinism and the random seed before anything is built.

    Args:
        plan: the run's plan.
    """
    apply_precision(plan.devices)
    if plan.spec.deterministic:
        tf.config.experimental.enable_op_determinism()
    # a resumed run reshuffles anew
    keras.utils.set_random_seed(plan.recipe.seed + plan.initial_epoch)


def build_and_compile(plan: RunPlan) -> tuple[keras.Model, CompileParts]:
    """Build and compile the family's model, or load the resumed run's last checkpoint.

    Args:
        plan: the run's plan.

    Returns:
        The model, compiled, and the parts ``fit`` needs (callbacks, class weights).

    Raises:
        RecipeError: a loss, schedule, class weighting or model that does not fit the data.
    """
    dataset = plan.dataset
    with plan.devices.strategy.scope():
        parts = compile_parts(plan.spec, plan.task, dataset.manifest, plan.steps_per_epoch)
        if plan.state is not None:
            assert plan.resume_dir is not None
            model = load_model(plan.resume_dir / CHECKPOINTS / plan.state["checkpoint"])
        else:
            model = build_model(plan.recipe.model, ModelIO(dataset.manifest))
            plan.hooks.compile(model, parts, plan.spec)
    if plan.devices.jit_compile is not None:
        model.jit_compile = plan.devices.jit_compile
    return model, parts


def open_run_record(plan: RunPlan, workdir: Path, run_info: Mapping[str, Any] | None) -> RunRecord:
    """Start a new run folder, or take up the resumed one; its run.json says it is running.

    Args:
        plan: the run's plan.
        workdir: the folder holding runs/.
        run_info: entries for a new run's run.json.

    Returns:
        The run folder and its run.json entries.
    """
    record = _new_record(plan, workdir, run_info) if plan.resume_dir is None else _resumed(plan)
    record.info.update(
        status="running", **environment(plan.recipe.seed, plan.devices, plan.spec.deterministic)
    )
    record.write()
    return record


def _new_record(plan: RunPlan, workdir: Path, run_info: Mapping[str, Any] | None) -> RunRecord:
    """A new run folder holding the resolved recipe and the data's manifest."""
    recipe, dataset = plan.recipe, plan.dataset
    run_dir = new_run_dir(workdir if plan.devices.is_chief else scratch_root(), recipe.name)
    write_text_atomic(run_dir / RECIPE_FILE, plan.loaded.to_yaml())
    # the manifest too, so the run describes its inputs and classes without data/
    write_json_atomic(run_dir / MANIFEST_FILE, dataset.manifest.to_json())
    info: dict[str, Any] = {
        "recipe": recipe.name,
        "recipe_file": str(plan.loaded.path),
        "status": "running",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        **(run_info or {}),
        "data": {
            "folder": str(dataset.folder),
            "fingerprint": dataset.manifest.source.fingerprint,
        },
    }
    return RunRecord(run_dir, info)


def _resumed(plan: RunPlan) -> RunRecord:
    """The resumed run's folder, its history cut back to its last checkpoint."""
    assert plan.resume_dir is not None
    run_dir = plan.resume_dir
    info = read_json(run_dir / RUN_INFO_FILE)
    info["resumed"] = [*info.get("resumed", []), {"at_epoch": plan.initial_epoch, "when": _now()}]
    _truncate_history(run_dir / HISTORY_FILE, plan.initial_epoch)
    return RunRecord(run_dir, info)


def load_batches(plan: RunPlan) -> Splits:
    """The training and validation batches, labelled as the model's family learns.

    Args:
        plan: the run's plan.

    Returns:
        Training batches reshuffled every epoch, validation batches in order.
    """
    spec, dataset, hooks = plan.spec, plan.dataset, plan.hooks
    train_x, train_y = dataset.load_split("train")
    val_x, val_y = dataset.load_split("validation")
    seed = plan.recipe.seed + plan.initial_epoch
    return Splits(
        train=make_dataset(
            train_x, hooks.labels(train_y), spec.batch_size, shuffle=spec.shuffle, seed=seed
        ),
        validation=make_dataset(
            val_x, hooks.labels(val_y), spec.batch_size, shuffle=False, seed=plan.recipe.seed
        ),
    )


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
    run_dir: Path,
    parts: CompileParts,
    console: Console,
    extra_callbacks: Sequence[keras.callbacks.Callback],
) -> Watchers:
    """The run's callbacks, in the order they must run.

    Args:
        plan: the run's plan.
        run_dir: the run folder they write into.
        parts: the compile parts, whose callbacks run after the logger of the learning rate.
        console: where the progress display draws.
        extra_callbacks: the caller's, run last.

    Returns:
        The callbacks, and the guard, early stopper and time budget among them.
    """
    spec = plan.spec
    guard = DivergenceGuard()
    callbacks: list[keras.callbacks.Callback] = [
        guard,
        EpochStats(),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=plan.state is not None),
        ProgressDisplay(
            console,
            epochs=spec.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            batch_size=spec.batch_size,
        ),
        *parts.callbacks,
    ]
    if spec.tensorboard and not plan.trial:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), profile_batch=0))
    stopper = early_stopping(plan, run_dir)
    if stopper is not None:
        callbacks.append(stopper)
    if not plan.trial:
        checkpoint_monitor = spec.early_stopping.monitor if stopper is not None else "val_loss"
        callbacks.append(
            EpochCheckpoint(run_dir, checkpoint_monitor, spec.early_stopping.mode, stopper)
        )
    callbacks.extend(plan.hooks.callbacks(run_dir, plan.dataset))
    budget = TimeBudget(spec.time_budget) if spec.time_budget else None
    if budget is not None:
        callbacks.append(budget)
    callbacks.extend(extra_callbacks)
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
    resumed = plan.state.get("early_stopping") if plan.state else None
    if resumed:
        resumed = {**resumed, "best_weights": best_weights(run_dir)}
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
        parts = compile_parts(phase.train, plan.task, dataset.manifest, plan.steps_per_epoch)
        plan.hooks.compile(model, parts, phase.train)
    _continue_callbacks(watch.callbacks, watch.stopper)


def record_interruption(plan: RunPlan, record: RunRecord) -> TrainingInterrupted:
    """Mark the run interrupted; the error that tells how to resume it.

    Args:
        plan: the run's plan.
        record: the run's record.

    Returns:
        The error to raise.
    """
    record.write(status="interrupted")
    done = (load_state(record.run_dir) or {}).get("epoch", 0)
    return TrainingInterrupted(
        f"Training stopped at your request after {done} completed epoch(s) of "
        f"{plan.spec.epochs}; run {record.run_dir} keeps its last checkpoint. Continue it with: "
        f"dltrain train --resume --run {record.run_dir}"
    )


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
    record.write(status="diverged")
    best = record.run_dir / CHECKPOINTS / BEST_FILE
    kept = f" The best epoch so far is kept in {best}." if best.is_file() else ""
    raise TrainingFailed(
        f"Training diverged at epoch {epoch}, batch {batch}: the loss became NaN or infinite."
        f"{kept} Lower the learning rate (now {plan.spec.optimizer.learning_rate}), add gradient "
        f"clipping (--set train.optimizer.clipnorm=1.0), or check the data for extreme values."
    )


@dataclass(frozen=True)
class Outcome:
    """What the finished training did, read from its history and its callbacks."""

    epochs_run: int
    final_logs: dict[str, float]
    best_epoch: int | None  # 1-based
    best_value: float | None
    stopped_by: str  # epochs | early_stopping | time_budget


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
    run_dir = record.run_dir
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)
    outcome = read_outcome(_read_history(run_dir / HISTORY_FILE), watch)
    if not plan.trial:
        plot_learning_curves(
            run_dir / HISTORY_FILE, run_dir / CURVES_FILE, f"{plan.recipe.name} · {run_dir.name}"
        )
    digest = weights_digest(model) if plan.devices.cluster is not None else None
    complete_record(record, plan, watch, outcome, seconds, digest, int(model.count_params()))
    cluster = plan.devices.cluster
    return TrainResult(
        run_dir=run_dir,
        epochs_run=outcome.epochs_run,
        monitor=plan.spec.early_stopping.monitor if watch.stopper else None,
        best_epoch=outcome.best_epoch,
        best_value=outcome.best_value,
        final_logs=outcome.final_logs,
        seconds=seconds,
        stopped_by=outcome.stopped_by,
        num_workers=cluster.num_workers if cluster else 1,
        chief=plan.devices.is_chief,
        weights_sha256=digest,
    )


def read_outcome(history: list[dict[str, float]], watch: Watchers) -> Outcome:
    """What training did: epochs run, last logs, best epoch and why it stopped.

    Args:
        history: history.csv's rows.
        watch: the run's callbacks.
    """
    stopper, budget = watch.stopper, watch.budget
    final_logs = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
    best_epoch = best_value = None
    if stopper is not None and stopper.best is not None and math.isfinite(stopper.best):
        best_epoch, best_value = stopper.best_epoch + 1, float(stopper.best)
    stopped_by = "epochs"
    if budget is not None and budget.exhausted:
        stopped_by = "time_budget"
    elif stopper is not None and stopper.stopped_epoch > 0:
        stopped_by = "early_stopping"
    return Outcome(len(history), final_logs, best_epoch, best_value, stopped_by)


def complete_record(
    record: RunRecord,
    plan: RunPlan,
    watch: Watchers,
    outcome: Outcome,
    seconds: float,
    digest: str | None,
    parameters: int,
) -> None:
    """Write run.json as completed, with what training did.

    Args:
        record: the run's record.
        plan: the run's plan.
        watch: the run's callbacks.
        outcome: what training did.
        seconds: how long this session's fitting took (a resumed run adds its earlier time).
        digest: the weights' SHA-256 across workers; None on one machine.
        parameters: the model's parameter count.
    """
    info = record.info
    if digest is not None:
        info["distribution"]["weights_sha256"] = digest
    monitor = plan.spec.early_stopping.monitor
    info.update(
        status="completed",
        finished=_now(),
        seconds=round(seconds + float(info.get("seconds", 0.0)), 2),
        epochs_run=outcome.epochs_run,
        stopped_by=outcome.stopped_by,
        parameters=parameters,
        best={"monitor": monitor, "epoch": outcome.best_epoch, "value": outcome.best_value}
        if watch.stopper
        else None,
        final=outcome.final_logs,
    )
    record.write()


def _continue_callbacks(
    callbacks: list[keras.callbacks.Callback], stopper: ResumableEarlyStopping | None
) -> None:
    """Let callbacks run on through a second ``fit`` as if it were the same one."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.CSVLogger):
            callback.append = True  # a second fit must not start history.csv afresh
    if stopper is not None and stopper.best is not None:
        # patience starts anew for fine-tuning; the best epoch so far still counts
        stopper.resume_from({**stopper.state(), "wait": 0, "best_weights": stopper.best_weights})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def _truncate_history(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows: a crash may have logged an epoch whose
    checkpoint was never completed, and that epoch is trained again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    write_text_atomic(path, "".join(lines[: epochs + 1]))
