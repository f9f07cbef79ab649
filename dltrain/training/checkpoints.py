"""Checkpoints that survive ``kill -9``, and the state a resumed run continues from.

After every epoch the whole model (weights and optimizer state, so the learning-rate schedule
resumes where it was) is written to ``checkpoints/epoch-NNNN.keras`` under a temporary name, then
``checkpoints/state.json`` is replaced to point at it: state.json is the commit point. A crash at
any moment leaves a state file naming a complete checkpoint. ``checkpoints/best.keras`` holds the
best epoch (with early stopping, the weights it will restore) and is replaced only after
state.json names that epoch best, so it is never ahead of the state; a crash in between is put
right by ``settle_best`` when the run is taken up again. An epoch whose loss or weights are not
finite is never checkpointed.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltrain.atomic import atomic_path, read_json, write_json_atomic
from dltrain.backend import keras
from dltrain.errors import RunError
from dltrain.faults import crash_point
from dltrain.run_info import StopReason
from dltrain.runs import RunFolder
from dltrain.training.callbacks import Logs, TimeBudget
from dltrain.training.schedules import PaceByTime, PlateauState, ReduceOnPlateau

_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1")


def monitor_mode(monitor: str, mode: str) -> str:
    """``min`` or ``max`` for a monitored quantity; ``auto`` decides by its name.

    Keras's own ``auto`` gives up on names it does not know (a GAN's ``val_g_loss``, say).
    """
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in _HIGHER_IS_BETTER) else "min"


@dataclass(frozen=True)
class StopperState:
    """Where early stopping stood: the best value so far, its epoch, and the epochs waited since.

    Attributes:
        best: the best monitored value; None before the first epoch counted.
        best_epoch: its epoch, counted from 0 as Keras counts.
        wait: epochs since the best, which patience counts.
        best_weights: the best epoch's weights, carried in memory only (the best checkpoint
            holds them on disk).
    """

    best: float | None
    best_epoch: int
    wait: int
    best_weights: list[Any] | None = None


@dataclass(frozen=True)
class CheckpointState:
    """checkpoints/state.json: the last completed epoch, its checkpoint, and the best so far.

    Attributes:
        epoch: epochs completed (the checkpoint holds the model after this many).
        checkpoint: the file name of that epoch's checkpoint in checkpoints/.
        monitor: what ``best_value`` measures.
        best_value: the best monitored value so far; None when never finite.
        best_epoch: its epoch, counted from 1.
        early_stopping: where early stopping stood; None when it was off.
        reduce_on_plateau: where reduce-on-plateau stood; None when it was off (or the state
            was written by a dltrain that did not keep it).
        schedule_progress: the share of the time budget a schedule paced by it had spent; None
            when the schedule counts epochs only.
        stopped_by: why training ended after this epoch, before its last (early stopping, the
            time budget); None when it was to go on. A run killed while saving its model
            after such an epoch is finished, not trained further, by ``--resume``.
    """

    epoch: int
    checkpoint: str
    monitor: str
    best_value: float | None
    best_epoch: int | None
    early_stopping: StopperState | None
    reduce_on_plateau: PlateauState | None = None
    schedule_progress: float | None = None
    stopped_by: StopReason | None = None

    def to_json(self) -> dict[str, Any]:
        """The document state.json holds (best weights stay out: best.keras holds them)."""
        stopper = self.early_stopping
        document: dict[str, Any] = {
            "epoch": self.epoch,
            "checkpoint": self.checkpoint,
            "monitor": self.monitor,
            "best_value": finite_or_none(self.best_value),
            "best_epoch": self.best_epoch,
            "early_stopping": None
            if stopper is None
            else {
                "best": finite_or_none(stopper.best),
                "best_epoch": stopper.best_epoch,
                "wait": stopper.wait,
            },
        }
        plateau = self.reduce_on_plateau
        if plateau is not None:
            document["reduce_on_plateau"] = {
                "factor": plateau.factor,
                "best": finite_or_none(plateau.best),
                "wait": plateau.wait,
                "cooldown": plateau.cooldown,
            }
        if self.schedule_progress is not None:
            document["schedule_progress"] = self.schedule_progress
        if self.stopped_by is not None:
            document["stopped_by"] = self.stopped_by.value
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any], source: Path) -> CheckpointState:
        """Read a parsed state.json.

        Raises:
            RunError: a field is missing or of the wrong kind.
        """
        try:
            stopper = document.get("early_stopping")
            plateau = document.get("reduce_on_plateau")
            stopped_by = document.get("stopped_by")
            progress = document.get("schedule_progress")
            return cls(
                epoch=int(document["epoch"]),
                checkpoint=str(document["checkpoint"]),
                monitor=str(document["monitor"]),
                # a state written before non-finite values were kept out may hold a NaN
                best_value=finite_or_none(document.get("best_value")),
                best_epoch=document.get("best_epoch"),
                early_stopping=None
                if not stopper
                else StopperState(
                    best=finite_or_none(stopper["best"]),
                    best_epoch=int(stopper["best_epoch"]),
                    wait=int(stopper["wait"]),
                ),
                reduce_on_plateau=None
                if not plateau
                else PlateauState(
                    factor=float(plateau["factor"]),
                    best=finite_or_none(plateau["best"]),
                    wait=int(plateau["wait"]),
                    cooldown=int(plateau["cooldown"]),
                ),
                schedule_progress=None if progress is None else float(progress),
                stopped_by=None if stopped_by is None else StopReason(stopped_by),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunError(
                f"{source} is not a checkpoint state dltrain can read (missing or wrong: {exc}). "
                f"It is written after every epoch with the epoch, its checkpoint file and the "
                f"best value so far. Start a new run with `dltrain train`."
            ) from None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping whose counters and best weights carry over a resume.

    Keras 3 restores the best weights at the end of training whether or not it stopped early,
    which is what we want: the saved model is always the best epoch's.
    """

    def __init__(self, *args: Any, resume_from: StopperState | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._resume_from = resume_from
        self.kept_best = False  # whether the last epoch became the weights to restore

    def on_train_begin(self, logs: Logs | None = None) -> None:
        super().on_train_begin(logs)
        state, self._resume_from = self._resume_from, None
        if state is not None:
            self.best = state.best
            self.best_epoch = state.best_epoch
            self.wait = state.wait
            self.best_weights = state.best_weights

    def _is_improvement(self, monitor_value: Any, reference_value: Any) -> bool:
        # Keras takes a NaN first value as the best, and nothing compares better than NaN, so
        # one diverged epoch would end every improvement; a non-finite value never improves.
        if monitor_value is None or not math.isfinite(float(monitor_value)):
            return False
        if reference_value is not None and not math.isfinite(float(reference_value)):
            return True  # a NaN best from a run written before this rule
        return bool(super()._is_improvement(monitor_value, reference_value))

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        held = self.best_weights
        super().on_epoch_end(epoch, logs)
        # Keras takes a fresh copy of the weights whenever it keeps an epoch as the best
        self.kept_best = self.best_weights is not None and self.best_weights is not held

    def resume_from(self, state: StopperState) -> None:
        """Start the next ``fit`` from this state instead of afresh."""
        self._resume_from = state

    def state(self) -> StopperState:
        """Where early stopping stands now (without the best weights)."""
        return StopperState(self.best, self.best_epoch, self.wait)


def stop_reason(
    stopper: ResumableEarlyStopping | None, budget: TimeBudget | None
) -> StopReason | None:
    """Why training stopped before its last epoch; None when nothing stopped it.

    Args:
        stopper: the run's early stopping, if on.
        budget: the run's time budget, if set.
    """
    if budget is not None and budget.exhausted:
        return StopReason.TIME_BUDGET
    if stopper is not None and stopper.stopped_epoch > 0:
        return StopReason.EARLY_STOPPING
    return None


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes the epoch's checkpoint, state.json and the best checkpoint after every epoch.

    It must run after the callbacks whose state it records (early stopping, reduce-on-plateau).

    Args:
        run_dir: the run folder.
        monitor: what decides the best epoch when early stopping does not (it has its own).
        mode: ``min``, ``max`` or ``auto`` for ``monitor``.
        stopper: the run's early stopping; with ``restore_best_weights``, best.keras holds the
            weights it will restore, so a resumed or finished run restores the same ones.
        plateau: the run's reduce-on-plateau, whose state a resume carries over.
        budget: the run's time budget, which may end training before its last epoch.
        pacer: what paces the schedule by the time budget, whose progress a resume carries over.
    """

    def __init__(
        self,
        run_dir: Path,
        monitor: str,
        mode: str,
        stopper: ResumableEarlyStopping | None,
        plateau: ReduceOnPlateau | None = None,
        budget: TimeBudget | None = None,
        pacer: PaceByTime | None = None,
    ):
        super().__init__()
        self.files = RunFolder(run_dir)
        self.files.checkpoints.mkdir(exist_ok=True)
        self.monitor = monitor
        self.maximize = monitor_mode(monitor, mode) == "max"
        self.stopper = stopper
        self.plateau = plateau
        self.budget = budget
        self.pacer = pacer
        previous = load_state(run_dir)
        self.best: float | None = previous.best_value if previous else None
        self.best_epoch: int | None = previous.best_epoch if previous else None

    def _improved(self, value: float | None) -> bool:
        stopper = self.stopper
        if stopper is not None and stopper.restore_best_weights:
            return stopper.kept_best
        if value is None or not is_finite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.maximize else value < self.best

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if not is_finite(logs.get("loss")) or not weights_finite(self.model):
            # A diverged epoch: its weights are no state to resume from or to keep as best;
            # the last good epoch's checkpoint and state.json stay what a resume starts from.
            return
        path = self.files.checkpoint(epoch + 1)
        with atomic_path(path) as tmp:
            self.model.save(tmp)
            crash_point("train.checkpoint")
        value = logs.get(self.monitor)
        improved = self._improved(value)
        if improved:
            self.best, self.best_epoch = finite_or_none(value), epoch + 1
        state = CheckpointState(
            epoch=epoch + 1,
            checkpoint=path.name,
            monitor=self.monitor,
            best_value=self.best,
            best_epoch=self.best_epoch,
            early_stopping=self.stopper.state() if self.stopper else None,
            reduce_on_plateau=self.plateau.state() if self.plateau else None,
            schedule_progress=self.pacer.progress() if self.pacer else None,
            stopped_by=stop_reason(self.stopper, self.budget),
        )
        crash_point("train.state")
        write_json_atomic(self.files.state, state.to_json())
        if improved:
            _copy_best(path, self.files.best_checkpoint)
        crash_point("train.prune")
        for old in self.files.checkpoints.glob("epoch-*.keras"):
            if old != path:
                old.unlink(missing_ok=True)


def _copy_best(checkpoint: Path, best: Path) -> None:
    """Replace best.keras with a copy of ``checkpoint``, atomically."""
    with atomic_path(best) as tmp:
        shutil.copyfile(checkpoint, tmp)
        crash_point("train.best")


def settle_best(run_dir: Path, state: CheckpointState) -> None:
    """Make best.keras the epoch state.json names best, when a crash left it a step behind.

    best.keras is replaced after state.json, so the only state a crash leaves between them is
    a state whose best epoch is its last, with best.keras still the older best. That epoch's
    checkpoint is the one state.json names, so it is copied again.

    Args:
        run_dir: the run folder.
        state: its state.json.
    """
    files = RunFolder(run_dir)
    checkpoint = files.checkpoints / state.checkpoint
    if state.best_epoch == state.epoch and checkpoint.is_file():
        _copy_best(checkpoint, files.best_checkpoint)


def is_finite(value: float | None) -> bool:
    """Whether a logged value is a finite number (None, NaN and infinities are not)."""
    return value is not None and math.isfinite(float(value))


def finite_or_none(value: float | None) -> float | None:
    """``value`` when finite, else None: JSON has no NaN, and a NaN best is no best."""
    return float(value) if value is not None and is_finite(value) else None


def weights_finite(model: keras.Model) -> bool:
    """Whether every floating-point weight of ``model`` is finite (no NaN, no infinity)."""
    ops = keras.ops
    return all(
        bool(ops.convert_to_numpy(ops.all(ops.isfinite(variable))))
        for variable in model.weights
        if "float" in str(variable.dtype)  # counters and seeds are integers
    )


def load_state(run_dir: Path) -> CheckpointState | None:
    """The last completed epoch's state, or None when the run has no checkpoint yet.

    Raises:
        RunError: state.json is there but cannot be read.
    """
    path = RunFolder(run_dir).state
    if not path.is_file():
        return None
    try:
        document = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunError(
            f"{path} is unreadable ({exc}). It is written atomically after every epoch, so "
            f"something else changed it. Start a new run with `dltrain train`."
        ) from None
    return CheckpointState.from_json(document, path)


def best_weights(run_dir: Path) -> list[Any] | None:
    """The best checkpoint's weights, for early stopping to carry over a resume."""
    path = RunFolder(run_dir).best_checkpoint
    if not path.is_file():
        return None
    from dltrain.models.saving import load_model

    return list(load_model(path, compile=False).get_weights())
