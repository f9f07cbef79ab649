"""`dltrain train --dry-run`'s time estimate: a few real training steps, timed.

The model is built and compiled as ``train`` builds it, and fed the prepared data through the
same input pipeline; 2 warm-up steps (the first traces and compiles the step function) are run
untimed, then at least 5 steps are timed, and more, up to 50, until they add up to 3 seconds
(a busy machine's steps vary several-fold, so 5 fast steps would say little); the same for
validation steps. An epoch is estimated as the
pipeline's batches times the mean step, plus the validation batches times theirs; its
uncertainty is the standard error of those means, scaled the same way.

Only a model of sane size is built for real: one whose training state ``measure_model`` found
to take at most half this machine's memory (so timing cannot exhaust it), outside a multi-worker
cluster (whose steps wait for the other workers). Otherwise the dry run says why it did not time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltrain.backend import keras
from dltrain.recipe import LoadedRecipe
from dltrain.training.dryrun import ModelSize, format_bytes

WARMUP_STEPS = 2  # the first step traces the step function: seconds, not a step's time
MIN_TIMED_STEPS = 5
MAX_TIMED_STEPS = 50
MIN_TIMED_SECONDS = 3.0  # time more than the minimum steps until they add up to this
MEMORY_SHARE = 0.5  # time only a model whose training takes at most this share of memory
TIME_CAP_SECONDS = 60.0  # stop timing early (keeping the steps timed so far) past this


@dataclass(frozen=True)
class StepTimes:
    """Seconds of each timed step of one kind (training or validation)."""

    seconds: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.seconds) / len(self.seconds)

    @property
    def error(self) -> float:
        """The standard error of the mean (0 from a single step)."""
        n = len(self.seconds)
        if n < 2:
            return 0.0
        variance = sum((s - self.mean) ** 2 for s in self.seconds) / (n - 1)
        return math.sqrt(variance / n)


@dataclass(frozen=True)
class EpochTime:
    """An epoch's time, estimated from timed steps, and the run's at the recipe's epochs."""

    steps_per_epoch: int  # training batches the pipeline yields per epoch
    validation_steps: int  # validation batches per epoch
    warmup_steps: int
    train: StepTimes
    validation: StepTimes | None  # None: no validation split to time
    epochs: int
    budget_seconds: float | None = None  # the recipe's train.time_budget

    @property
    def epoch_seconds(self) -> float:
        val = self.validation.mean * self.validation_steps if self.validation else 0.0
        return self.train.mean * self.steps_per_epoch + val

    @property
    def epoch_error(self) -> float:
        val = self.validation.error * self.validation_steps if self.validation else 0.0
        return math.hypot(self.train.error * self.steps_per_epoch, val)

    @property
    def total_seconds(self) -> float:
        return self.epoch_seconds * self.epochs

    @property
    def total_error(self) -> float:
        return self.epoch_error * self.epochs  # one machine's bias, not independent per epoch

    @property
    def epochs_in_budget(self) -> int | None:
        """Whole epochs the time budget holds at the estimated pace, at most the recipe's;
        None without a budget."""
        if self.budget_seconds is None:
            return None
        return min(self.epochs, int(self.budget_seconds // self.epoch_seconds))

    def to_json(self) -> dict[str, object]:
        val = self.validation
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "validation_steps": self.validation_steps,
            "warmup_steps": self.warmup_steps,
            "timed_steps": len(self.train.seconds),
            "step_seconds": self.train.mean,
            "step_seconds_error": self.train.error,
            "validation_step_seconds": None if val is None else val.mean,
            "epoch_seconds": self.epoch_seconds,
            "epoch_seconds_error": self.epoch_error,
            "epochs": self.epochs,
            "total_seconds": self.total_seconds,
            "total_seconds_error": self.total_error,
            "budget_seconds": self.budget_seconds,
            "epochs_in_budget": self.epochs_in_budget,
        }


def timing_refusal(size: ModelSize, multiworker: bool) -> str | None:
    """Why the model must not be built to be timed; None when it may."""
    if multiworker:
        return "TF_CONFIG names several workers, whose steps wait for one another"
    allowed = size.memory.bytes * MEMORY_SHARE
    if size.training_bytes > allowed:
        return (
            f"training it takes about {format_bytes(size.training_bytes)}, over half of "
            f"{size.memory.where}; building it to time it could exhaust the machine"
        )
    return None


def time_epoch(loaded: LoadedRecipe, workdir: Path) -> EpochTime:
    """Build and compile the recipe's model as ``train`` does and time a few steps on its
    prepared data; nothing is written.

    Args:
        loaded: the validated recipe (its model already measured and found to fit).
        workdir: the folder holding data/.

    Returns:
        The per-step times, and the epoch and run estimates they give.

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: a setting that does not fit the data (the loss, class weighting).
    """
    from dltrain.training.fit import build_and_compile, load_batches
    from dltrain.training.plan import configure_tensorflow, plan_run

    plan = plan_run(loaded, workdir, None, trial=False)
    configure_tensorflow(plan)
    model, parts = build_and_compile(plan)
    splits = load_batches(plan)
    steps = plan.steps_per_epoch  # what train's schedule counts; load_batches checks it
    validation_steps = int(splits.validation.cardinality())
    if validation_steps < 0:  # a pipeline that cannot count: the manifest's rows, batched
        rows = plan.dataset.manifest.splits["validation"].num_examples
        validation_steps = math.ceil(rows / plan.spec.batch_size)
    timer = _StepTimer()
    count = WARMUP_STEPS + MAX_TIMED_STEPS  # the timer stops earlier once it has enough
    # Repeated: a split of fewer batches than warm-up and timed steps still gives them all.
    model.fit(
        splits.train.repeat(),
        steps_per_epoch=count,
        epochs=1,
        callbacks=[timer],
        class_weight=parts.class_weight,
        verbose=0,
        shuffle=False,
    )
    validation = None
    if validation_steps > 0:
        model.evaluate(splits.validation.repeat(), steps=count, callbacks=[timer], verbose=0)
        validation = StepTimes(tuple(timer.test[WARMUP_STEPS:])) if timer.test else None
    return EpochTime(
        steps_per_epoch=steps,
        validation_steps=validation_steps,
        warmup_steps=WARMUP_STEPS,
        train=StepTimes(tuple(timer.train[WARMUP_STEPS:])),
        validation=validation if validation and validation.seconds else None,
        epochs=plan.spec.epochs,
        budget_seconds=plan.spec.time_budget,
    )


class _StepTimer(keras.callbacks.Callback):
    """Each batch's wall time, begin to end, the step's results made concrete (so the time is
    the computation's, not its dispatch's); stops once ``_enough`` steps are timed."""

    def __init__(self) -> None:
        super().__init__()
        self.train: list[float] = []
        self.test: list[float] = []
        self._started = 0.0
        self._first = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._begin()

    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._begin()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._end(self.train, logs)
        if self._enough(self.train):
            self.model.stop_training = True

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._end(self.test, logs)
        if self._enough(self.test):
            self.model.stop_evaluating = True

    def _begin(self) -> None:
        self._started = time.perf_counter()
        self._first = self._first or self._started

    def _end(self, times: list[float], logs: dict[str, Any] | None) -> None:
        for value in (logs or {}).values():
            keras.ops.convert_to_numpy(value)  # waits for the step to finish
        times.append(time.perf_counter() - self._started)

    def _enough(self, times: list[float]) -> bool:
        """Enough steps timed: the minimum, and 3 seconds of them or the maximum; or, past
        the minimum of one step, the whole timing over its cap."""
        timed = times[WARMUP_STEPS:]
        if not timed:
            return False
        if time.perf_counter() - self._first > TIME_CAP_SECONDS:
            return True
        return len(timed) >= MIN_TIMED_STEPS and (
            sum(timed) >= MIN_TIMED_SECONDS or len(timed) >= MAX_TIMED_STEPS
        )
