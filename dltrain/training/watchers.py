"""The callbacks that watch a run: progress, history, checkpoints, early stopping, the time
budget and averaged weights, in the order they must run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from dltrain.backend import keras
from dltrain.runs import RunFolder
from dltrain.training.averaging import AveragedWeights, averaging
from dltrain.training.callbacks import DivergenceGuard, EpochStats, ProgressDisplay, TimeBudget
from dltrain.training.checkpoints import (
    EpochCheckpoint,
    ResumableEarlyStopping,
    best_weights,
    monitor_mode,
)
from dltrain.training.compile import CompileParts
from dltrain.training.plan import RunPlan
from dltrain.training.schedules import PaceByTime, ReduceOnPlateau


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
    pacer = next((c for c in parts.callbacks if isinstance(c, PaceByTime)), None)
    if pacer is not None and plan.state is not None and plan.state.schedule_progress is not None:
        pacer.resume_from(plan.state.schedule_progress)
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
                pacer,
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
