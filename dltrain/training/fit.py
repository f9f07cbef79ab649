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
from dltrain.models import build_model
from dltrain.models.autoencoder import reconstruction_loss
from dltrain.models.io import ModelIO
from dltrain.models.saving import load_model
from dltrain.models.transfer import unfreeze
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.models import GanSpec, TransferSpec
from dltrain.recipe.schema import TrainSpec
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
from dltrain.training.compile import compile_parts
from dltrain.training.curves import plot_learning_curves
from dltrain.training.device import DevicePlan, apply_precision, plan_devices
from dltrain.training.losses import logged_names
from dltrain.training.multiworker import check_supported, private_copy, scratch_root, weights_digest
from dltrain.training.multiworker import fit as fit_multiworker
from dltrain.training.optimizers import make_optimizer

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
    recipe = loaded.recipe
    spec = recipe.train
    dataset = open_prepared(loaded, workdir)
    autoencoder = recipe.model.family == "autoencoder"  # learns its input: labels unused
    gan = isinstance(recipe.model, GanSpec)  # learns to make images: labels unused
    task = (
        Task.RECONSTRUCTION
        if autoencoder
        else Task.GENERATION
        if gan
        else dataset.manifest.task
    )
    monitor = spec.early_stopping.monitor
    if spec.early_stopping.enabled:
        check_monitor(monitor, task)
    state = unfinished_run(resume_dir) if resume_dir is not None else None
    initial_epoch = int(state["epoch"]) if state else 0
    if initial_epoch >= spec.epochs:
        raise RunError(
            f"Run {resume_dir} already completed {initial_epoch} of {spec.epochs} epochs. To train "
            f"it further, resume with more epochs: --epochs {initial_epoch + 5}."
        )

    check_supported(recipe, trial=trial)
    plan = plan_devices(spec)
    if resume_dir is not None and not plan.is_chief:
        resume_dir = private_copy(resume_dir)  # resume from the chief's run; write elsewhere
    apply_precision(plan)
    if spec.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(recipe.seed + initial_epoch)  # a resumed run reshuffles anew

    # Everything that can still refuse the recipe (loss, schedule, model family, weights file)
    # happens before the run folder exists, so a refusal leaves nothing behind.
    steps_per_epoch = math.ceil(dataset.num_examples("train") / spec.batch_size)

    def compile_model(model: keras.Model, train_spec: TrainSpec, parts: Any = None) -> Any:
        parts = parts or compile_parts(train_spec, task, dataset.manifest, steps_per_epoch)
        if isinstance(recipe.model, GanSpec):
            rate = recipe.model.discriminator_learning_rate or train_spec.optimizer.learning_rate
            d_spec = train_spec.optimizer.model_copy(update={"learning_rate": rate})
            model.compile(optimizer=parts.optimizer, d_optimizer=make_optimizer(d_spec, rate))
            return parts
        if autoencoder:
            model.compile(optimizer=parts.optimizer, loss=reconstruction_loss)
        else:
            model.compile(optimizer=parts.optimizer, loss=parts.loss, metrics=parts.metrics)
        return parts

    with plan.strategy.scope():
        parts = compile_parts(spec, task, dataset.manifest, steps_per_epoch)
        if state is not None:
            assert resume_dir is not None
            model = load_model(resume_dir / CHECKPOINTS / state["checkpoint"])
        else:
            model = build_model(recipe.model, ModelIO(dataset.manifest))
            compile_model(model, spec, parts)

    if resume_dir is None:
        run_dir = new_run_dir(workdir if plan.is_chief else scratch_root(), recipe.name)
        write_text_atomic(run_dir / RECIPE_FILE, loaded.to_yaml())
        # the manifest too, so the run describes its inputs and classes without data/
        write_json_atomic(run_dir / MANIFEST_FILE, dataset.manifest.to_json())
        info: dict[str, Any] = {
            "recipe": recipe.name,
            "recipe_file": str(loaded.path),
            "status": "running",
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            **(run_info or {}),
            "data": {
                "folder": str(dataset.folder),
                "fingerprint": dataset.manifest.source.fingerprint,
            },
        }
    else:
        run_dir = resume_dir
        info = read_json(run_dir / RUN_INFO_FILE)
        info["resumed"] = [*info.get("resumed", []), {"at_epoch": initial_epoch, "when": _now()}]
        _truncate_history(run_dir / HISTORY_FILE, initial_epoch)
    info.update(status="running", **environment(recipe.seed, plan, spec.deterministic))
    write_json_atomic(run_dir / RUN_INFO_FILE, info)

    train_x, train_y = dataset.load_split("train")
    val_x, val_y = dataset.load_split("validation")
    if autoencoder or gan:
        train_y, val_y = (np.zeros(len(y), dtype="float32") for y in (train_y, val_y))
    seed = recipe.seed + initial_epoch
    train_data = make_dataset(train_x, train_y, spec.batch_size, shuffle=spec.shuffle, seed=seed)
    val_data = make_dataset(val_x, val_y, spec.batch_size, shuffle=False, seed=recipe.seed)

    if plan.jit_compile is not None:
        model.jit_compile = plan.jit_compile
    if not trial:
        summary: list[str] = []
        model.summary(print_fn=lambda line, **_: summary.append(line))
        write_text_atomic(run_dir / SUMMARY_FILE, "\n".join(summary) + "\n")

    guard = DivergenceGuard()
    callbacks: list[keras.callbacks.Callback] = [
        guard,
        EpochStats(),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=state is not None),
        ProgressDisplay(
            console, epochs=spec.epochs, steps_per_epoch=steps_per_epoch, batch_size=spec.batch_size
        ),
        *parts.callbacks,
    ]
    if spec.tensorboard and not trial:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), profile_batch=0))
    stopper = None
    if spec.early_stopping.enabled:
        es = spec.early_stopping
        resumed_stopper = state.get("early_stopping") if state else None
        if resumed_stopper:
            resumed_stopper = {**resumed_stopper, "best_weights": best_weights(run_dir)}
        stopper = ResumableEarlyStopping(
            monitor=es.monitor,
            mode=monitor_mode(es.monitor, es.mode),
            patience=es.patience,
            min_delta=es.min_delta,
            start_from_epoch=es.start_epoch,
            restore_best_weights=es.restore_best_weights,
            resume_from=resumed_stopper,
        )
        callbacks.append(stopper)
    if not trial:
        checkpoint_monitor = monitor if spec.early_stopping.enabled else "val_loss"
        callbacks.append(
            EpochCheckpoint(run_dir, checkpoint_monitor, spec.early_stopping.mode, stopper)
        )
    if isinstance(recipe.model, GanSpec):
        from dltrain.models.gan import SampleGrid

        callbacks.append(
            SampleGrid(
                run_dir / "samples",
                dataset.manifest,
                recipe.model.samples,
                recipe.model.latent_dim,
            )
        )
    budget = TimeBudget(spec.time_budget) if spec.time_budget else None
    if budget is not None:
        callbacks.append(budget)
    callbacks.extend(extra_callbacks)

    # Transfer learning trains in two phases: the head on a frozen backbone, then everything
    # at a lower rate. Keras must compile again after unfreezing, or it trains the head only.
    freeze = recipe.model.freeze_epochs if isinstance(recipe.model, TransferSpec) else 0
    first_end = freeze if initial_epoch < freeze < spec.epochs else spec.epochs
    # Keras 3's fit fails across machines (keras-team/keras#20585); our loop takes its place.
    run_fit = model.fit if plan.cluster is None else partial(fit_multiworker, model, plan.strategy)
    started = time.perf_counter()
    try:
        run_fit(
            train_data,
            validation_data=val_data,
            epochs=first_end,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            class_weight=parts.class_weight,
            verbose=0,
            shuffle=False,  # the input pipeline already reshuffles every epoch
        )
        if (
            first_end < spec.epochs
            and guard.diverged_at is None
            and not (budget and budget.exhausted)
        ):
            assert isinstance(recipe.model, TransferSpec)
            unfreeze(model, recipe.model)
            fine_rate = spec.optimizer.learning_rate * recipe.model.fine_tune_learning_rate
            fine_spec = spec.model_copy(
                update={"optimizer": spec.optimizer.model_copy(update={"learning_rate": fine_rate})}
            )
            with plan.strategy.scope():
                compile_model(model, fine_spec)
            _continue_callbacks(callbacks, stopper)
            run_fit(
                train_data,
                validation_data=val_data,
                epochs=spec.epochs,
                initial_epoch=first_end,
                callbacks=callbacks,
                class_weight=parts.class_weight,
                verbose=0,
                shuffle=False,  # the input pipeline already reshuffles every epoch
            )
    except KeyboardInterrupt:
        write_json_atomic(run_dir / RUN_INFO_FILE, {**info, "status": "interrupted"})
        done = (load_state(run_dir) or {}).get("epoch", 0)
        raise TrainingInterrupted(
            f"Training stopped at your request after {done} completed epoch(s) of {spec.epochs}; "
            f"run {run_dir} keeps its last checkpoint. Continue it with: dltrain train --resume "
            f"--run {run_dir}"
        ) from None
    seconds = time.perf_counter() - started

    if guard.diverged_at is not None:
        epoch, batch = guard.diverged_at
        write_json_atomic(run_dir / RUN_INFO_FILE, {**info, "status": "diverged"})
        best = run_dir / CHECKPOINTS / BEST_FILE
        kept = f" The best epoch so far is kept in {best}." if best.is_file() else ""
        raise TrainingFailed(
            f"Training diverged at epoch {epoch}, batch {batch}: the loss became NaN or infinite."
            f"{kept} Lower the learning rate (now {spec.optimizer.learning_rate}), add gradient "
            f"clipping (--set train.optimizer.clipnorm=1.0), or check the data for extreme values."
        )

    with atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)
    history = _read_history(run_dir / HISTORY_FILE)
    if not trial:
        plot_learning_curves(
            run_dir / HISTORY_FILE, run_dir / CURVES_FILE, f"{recipe.name} · {run_dir.name}"
        )

    epochs_run = len(history)
    final_logs = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
    best_epoch = best_value = None
    if stopper is not None and stopper.best is not None and math.isfinite(stopper.best):
        best_epoch, best_value = stopper.best_epoch + 1, float(stopper.best)
    stopped_by = "epochs"
    if budget is not None and budget.exhausted:
        stopped_by = "time_budget"
    elif stopper is not None and stopper.stopped_epoch > 0:
        stopped_by = "early_stopping"
    digest = weights_digest(model) if plan.cluster is not None else None
    if digest is not None:
        info["distribution"]["weights_sha256"] = digest
    info.update(
        status="completed",
        finished=_now(),
        seconds=round(seconds + float(info.get("seconds", 0.0)), 2),
        epochs_run=epochs_run,
        stopped_by=stopped_by,
        parameters=int(model.count_params()),
        best={"monitor": monitor, "epoch": best_epoch, "value": best_value} if stopper else None,
        final=final_logs,
    )
    write_json_atomic(run_dir / RUN_INFO_FILE, info)
    return TrainResult(
        run_dir=run_dir,
        epochs_run=epochs_run,
        monitor=monitor if stopper else None,
        best_epoch=best_epoch,
        best_value=best_value,
        final_logs=final_logs,
        seconds=seconds,
        stopped_by=stopped_by,
        num_workers=plan.cluster.num_workers if plan.cluster else 1,
        chief=plan.is_chief,
        weights_sha256=digest,
    )


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
