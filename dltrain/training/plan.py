"""What one training run is, settled before anything is built or written: the ``RunPlan``.

``plan_run`` opens the prepared data, asks the model's family how it trains and refuses, before
a run folder exists, what cannot run: data prepared from other settings, a monitor training
never logs, a run that cannot be resumed, a cluster the family cannot train across.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltrain import __version__
from dltrain.backend import keras, tf
from dltrain.data.prepare import data_spec_digest
from dltrain.data.store import PreparedDataset, open_store
from dltrain.errors import DataError, RecipeError, RunError
from dltrain.models import training_hooks
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.schema import Recipe, TrainSpec
from dltrain.run_info import Distribution, RunEnvironment, RunStatus, WorkerTask
from dltrain.runs import RunFolder, data_dir
from dltrain.tasks import Task
from dltrain.training.calibrate import check_calibration
from dltrain.training.checkpoints import CheckpointState, load_state
from dltrain.training.device import DevicePlan, apply_precision, plan_devices
from dltrain.training.hooks import TrainingHooks
from dltrain.training.losses import logged_names
from dltrain.training.multiworker import check_supported, private_copy


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


def environment(seed: int, plan: DevicePlan, deterministic: bool) -> RunEnvironment:
    """Versions, seed and device, so a run says how to reproduce it."""
    cluster = plan.cluster
    return RunEnvironment(
        seed=seed,
        deterministic=deterministic,
        device=plan.description,
        # None on one machine, so a resumed run does not keep a cluster it no longer has
        distribution=Distribution(
            strategy="MultiWorkerMirroredStrategy",
            num_workers=cluster.num_workers,
            task=WorkerTask(type=cluster.task_type, index=cluster.task_index),
        )
        if cluster
        else None,
        versions={
            "dltrain": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    )


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


def epoch_steps(dataset: PreparedDataset, batch_size: int) -> int:
    """Batches in one training epoch: the training split as the pipeline yields it, resampled.

    Args:
        dataset: the prepared dataset.
        batch_size: examples per batch (the last batch may be smaller).

    Returns:
        Optimizer steps per epoch, which schedules count in and progress shows.
    """
    return math.ceil(dataset.num_examples("train") / batch_size)


def unfinished_run(run_dir: Path) -> CheckpointState:
    """The checkpoint state of a run that can be resumed (or, its training over, finished).

    Raises:
        RunError: the run finished already, is being trained by a process still alive, never
            completed an epoch, or its checkpoint state or run.json cannot be read.
    """
    files = RunFolder(run_dir)
    if files.finished and not files.resumable:
        raise RunError(
            f"Run {run_dir} finished already (it has {files.model.name}); there is nothing to "
            f"resume. Start a new run with `dltrain train`, or resume with more epochs only from "
            f"a run that was interrupted."
        )
    info = files.read_info()
    owner = info.owner
    if info.status is RunStatus.RUNNING and owner is not None and owner.is_alive():
        raise RunError(
            f"Run {run_dir} is being trained right now by process {owner.pid} on {owner.host}; "
            f"resuming it too would have two processes write one run. Wait for it to end, or "
            f"stop it (Ctrl-C, or kill {owner.pid}) and resume it then."
        )
    state = load_state(run_dir)
    if state is None:
        raise RunError(
            f"Run {run_dir} has no checkpoint: it stopped before finishing its first epoch. "
            f"Start a new run with `dltrain train`."
        )
    return state


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
        finishing: the resumed run's training is over (its epochs done, or early stopping or
            the time budget ended it) and it was killed while saving its model or closing
            run.json: only those are left to write.
        trial: a ``dltrain tune`` trial (see ``train``).
        steps_per_epoch: batches per epoch, which schedules count in.
    """

    loaded: LoadedRecipe
    dataset: PreparedDataset
    hooks: TrainingHooks
    task: Task
    devices: DevicePlan
    state: CheckpointState | None
    initial_epoch: int
    resume_dir: Path | None
    trial: bool
    steps_per_epoch: int
    finishing: bool = False

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    @property
    def spec(self) -> TrainSpec:
        return self.loaded.recipe.train


def plan_run(
    loaded: LoadedRecipe,
    workdir: Path,
    resume_dir: Path | None,
    trial: bool,
    dataset: PreparedDataset | None = None,
) -> RunPlan:
    """Open the data, ask the model's family how it trains, and refuse what cannot run.

    Args:
        loaded: the validated recipe.
        workdir: the folder holding data/ and runs/.
        resume_dir: an unfinished run to continue, or None.
        trial: a ``dltrain tune`` trial.
        dataset: data to train on instead of the recipe's prepared dataset (a fold's view).

    Returns:
        The plan every later step follows.

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: an early-stopping monitor training does not log.
        RunError: ``resume_dir`` cannot be resumed.
        UsageError: the run cannot train across the ``TF_CONFIG`` workers.
    """
    recipe = loaded.recipe
    spec = recipe.train
    dataset = dataset or open_prepared(loaded, workdir)
    hooks = training_hooks(recipe.model)
    task = hooks.task(dataset)
    if spec.early_stopping.enabled:
        check_monitor(spec.early_stopping.monitor, task)
    check_calibration(spec, task, recipe.model.family)
    state = unfinished_run(resume_dir) if resume_dir is not None else None
    initial_epoch = state.epoch if state else 0
    # --epochs beyond those done trains on; a run that early stopping or its time budget ended
    # stays ended, as it would have had the kill come a moment later
    finishing = state is not None and (state.stopped_by is not None or initial_epoch >= spec.epochs)
    check_supported(recipe, trial=trial)
    devices = plan_devices(spec)
    if resume_dir is not None and not devices.is_chief:
        resume_dir = private_copy(resume_dir)  # resume from the chief's run; write elsewhere
    steps_per_epoch = epoch_steps(dataset, spec.batch_size)
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
        finishing=finishing,
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
