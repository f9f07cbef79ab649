"""Learning-rate schedules counted in epochs, with warmup and reduce-on-plateau that compose.

Every schedule in the recipe becomes a Keras ``LearningRateSchedule`` over optimizer steps
(batches): epochs × steps per epoch. Two wrappers make Keras's pieces compose:

- ``LinearWarmup`` ramps the rate up to the inner schedule's first value, then runs the inner
  schedule shifted by the warmup steps, so every schedule can be warmed up.
- ``PlateauScaled`` multiplies the inner schedule by a factor that ``ReduceOnPlateau`` lowers
  when a metric stalls. Keras's ``ReduceLROnPlateau`` assigns a float to the optimizer's rate,
  which fails when the optimizer holds a schedule; lowering a factor works with any schedule.

- ``TimePaced`` runs the schedule at the further of the optimizer's step and the share of the
  time budget spent (``PaceByTime`` keeps that share), so a schedule paced by the budget ends
  when the budget does even when epochs run slower than planned.

The wrappers are registered Keras objects, so a compiled model saves and loads with them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.recipe.choices import ScheduleName, SchedulePace
from dltrain.recipe.optimization import PlateauSpec, ScheduleSpec
from dltrain.training.callbacks import Logs
from dltrain.training.one_cycle import one_cycle

LearningRate: TypeAlias = float | keras.optimizers.schedules.LearningRateSchedule
_schedules = keras.optimizers.schedules


@keras.saving.register_keras_serializable(package="dltrain")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The same rate at every step, as a schedule a wrapper can hold.

    Example: ``ConstantSchedule(0.01)(500)`` is 0.01.
    """

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)

    def __call__(self, step: Any) -> Any:
        return keras.ops.cast(keras.ops.full((), self.learning_rate), "float32")

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate}


@keras.saving.register_keras_serializable(package="dltrain")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A linear ramp over ``warmup_steps``, then ``schedule`` started afresh.

    The ramp goes from ``start_factor`` × the inner schedule's first rate to that rate; step
    ``s`` of the ramp has ``start + (1 − start)·(s + 1)/warmup_steps``, so even a ramp from zero
    makes progress on its first step. After the ramp, step ``s`` runs the inner schedule's step
    ``s − warmup_steps``.

    Example: ``LinearWarmup(CosineDecay(0.1, 900), warmup_steps=100)`` climbs to 0.1 over 100
    steps, then decays along the full cosine over the remaining 900.

    Args:
        schedule: the schedule to warm up.
        warmup_steps: length of the ramp in optimizer steps (> 0).
        start_factor: the ramp's first rate as a fraction of the target, in [0, 1).
    """

    def __init__(
        self,
        schedule: keras.optimizers.schedules.LearningRateSchedule,
        warmup_steps: int,
        start_factor: float = 0.0,
    ) -> None:
        if warmup_steps <= 0:
            raise ValueError(f"Argument `warmup_steps` must be > 0. Received: {warmup_steps}")
        if not 0 <= start_factor < 1:
            raise ValueError(f"Argument `start_factor` must be in [0, 1). Received: {start_factor}")
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.start_factor = float(start_factor)

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        after = self.schedule(ops.maximum(step - self.warmup_steps, 0))
        target = ops.cast(self.schedule(0), after.dtype)
        fraction = ops.minimum(1.0, (ops.cast(step, after.dtype) + 1.0) / self.warmup_steps)
        ramp = target * (self.start_factor + (1.0 - self.start_factor) * fraction)
        return ops.where(step < self.warmup_steps, ramp, after)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": _schedules.serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LinearWarmup:
        config = dict(config)
        config["schedule"] = _schedules.deserialize(config["schedule"])
        return cls(**config)


def step_variable(value: float, name: str) -> keras.Variable:
    """A number a schedule reads and a callback changes between steps.

    A variable, not a float: the compiled train step reads it on every step, so a change takes
    effect without retracing. Only the first replica's copy is updated, as Keras does for the
    optimizer's own learning-rate variable.
    """
    return keras.Variable(
        float(value), trainable=False, dtype="float32", name=name, aggregation="only_first_replica"
    )


@keras.saving.register_keras_serializable(package="dltrain")
class PlateauScaled(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step) × factor``, where ``factor`` is lowered by ``ReduceOnPlateau``.

    Reductions never take the rate below ``min_learning_rate``; the inner schedule itself may
    (a cosine decaying to zero still reaches zero).

    Example: a cosine schedule whose factor a stalled ``val_loss`` halved runs at half the
    cosine from then on.

    Args:
        schedule: the schedule to scale.
        factor: the starting factor (1.0 for a fresh run; a saved model keeps its own).
        min_learning_rate: the floor of reductions.
    """

    def __init__(
        self,
        schedule: keras.optimizers.schedules.LearningRateSchedule,
        factor: float = 1.0,
        min_learning_rate: float = 0.0,
    ) -> None:
        self.schedule = schedule
        self.min_learning_rate = float(min_learning_rate)
        self.factor = step_variable(factor, "plateau_factor")

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        inner = self.schedule(step)
        scaled = inner * ops.cast(self.factor, inner.dtype)
        return ops.maximum(scaled, ops.minimum(inner, self.min_learning_rate))

    def reduce(self, by: float) -> None:
        """Multiply the factor by ``by`` (a reduction when ``by`` < 1)."""
        self.factor.assign(float(keras.ops.convert_to_numpy(self.factor)) * by)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": _schedules.serialize(self.schedule),
            "factor": float(keras.ops.convert_to_numpy(self.factor)),
            "min_learning_rate": self.min_learning_rate,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PlateauScaled:
        config = dict(config)
        config["schedule"] = _schedules.deserialize(config["schedule"])
        return cls(**config)


PACE_RESOLUTION = 1e-4  # the smallest move of the budget's share that PaceByTime writes


@keras.saving.register_keras_serializable(package="dltrain")
class TimePaced(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` at the further of the optimizer's step and the time budget's progress.

    The schedule is laid out over ``total_steps`` (the run's epochs × steps per epoch).
    ``progress`` is the share of the time budget spent, which ``PaceByTime`` raises before every
    batch; step ``s`` runs the schedule at ``max(s, progress × total_steps)``. So the schedule
    ends when the epochs end or when the budget does, whichever comes first: slow epochs move
    it along faster, but it never falls behind the steps.

    Example: cosine over 20 epochs of 100 steps under a 10-minute budget, 5 minutes in at step
    600: the rate is the cosine's at step 1,000 (half-way), not at step 600.

    Args:
        schedule: the schedule to pace, over ``total_steps``.
        total_steps: the run's length in optimizer steps.
        progress: the share of the budget already spent (0 for a fresh run).
    """

    def __init__(
        self,
        schedule: keras.optimizers.schedules.LearningRateSchedule,
        total_steps: int,
        progress: float = 0.0,
    ) -> None:
        self.schedule = schedule
        self.total_steps = int(total_steps)
        # Changed through set_progress only, which keeps the value in Python too: reading it
        # back from the variable on every batch would cost a tensor read each time.
        self.progress = step_variable(progress, "time_progress")
        self._progress = float(progress)

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        paced = ops.cast(self.progress, "float32") * float(self.total_steps)
        return self.schedule(ops.maximum(ops.cast(step, "float32"), paced))

    def step_at(self, step: int) -> float:
        """The schedule's step that optimizer step ``step`` runs at now (for the momentum cycle)."""
        return max(float(step), self.progress_now() * self.total_steps)

    def progress_now(self) -> float:
        """The share of the budget spent, as the schedule last heard it."""
        return self._progress

    def set_progress(self, share: float) -> None:
        """Tell the schedule that ``share`` of the budget is spent."""
        self._progress = float(share)
        self.progress.assign(self._progress)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": _schedules.serialize(self.schedule),
            "total_steps": self.total_steps,
            "progress": self.progress_now(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TimePaced:
        config = dict(config)
        config["schedule"] = _schedules.deserialize(config["schedule"])
        return cls(**config)


class PaceByTime(keras.callbacks.Callback):
    """Tells the optimizer's ``TimePaced`` schedule how much of the time budget is spent.

    The clock starts when training begins, as ``TimeBudget``'s does. A resumed run hands the
    progress its checkpoint recorded to ``resume_from`` first; it then spreads the rest of the
    schedule over its own budget (a resumed run gets a budget of its own).

    Args:
        seconds: the time budget.
        clock: seconds from a fixed start (a test's own clock; ``time.perf_counter``).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.seconds = seconds
        self.clock = clock
        self.schedule: TimePaced | None = None
        self._started = 0.0
        self._start_progress = 0.0
        self._resume_from: float | None = None

    def resume_from(self, progress: float) -> None:
        """Start the next ``fit`` where a checkpointed run's schedule stood."""
        self._resume_from = progress

    def progress(self) -> float:
        """The share of the schedule's time spent so far (0 before training begins)."""
        return self.schedule.progress_now() if self.schedule is not None else 0.0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.schedule = find_time_paced(held_rate(self.model))
        if self.schedule is None:
            raise ValueError(
                "PaceByTime needs an optimizer whose learning rate holds a TimePaced schedule "
                "(make_schedule builds one when lr_schedule.pace is time_budget)."
            )
        resumed, self._resume_from = self._resume_from, None
        if resumed is not None:
            self.schedule.set_progress(resumed)
        self._start_progress = self.schedule.progress_now()
        self._started = self.clock()

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        if self.schedule is None:
            return
        spent = min(1.0, (self.clock() - self._started) / self.seconds)
        start = self._start_progress
        share = start + (1.0 - start) * spent
        # A variable write costs ~80 µs, a whole step of a small table model's: write only once
        # the share has moved by a 10,000th of the budget (90 ms of 15 minutes), or reached its end.
        if share - self.schedule.progress_now() >= PACE_RESOLUTION or share == 1.0:
            self.schedule.set_progress(share)


@dataclass(frozen=True)
class PlateauState:
    """Where reduce-on-plateau stood after an epoch, so a resumed run reduces as it would have.

    Attributes:
        factor: the schedule's factor (1.0 until a reduction).
        best: the best monitored value so far; None before the first finite one.
        wait: epochs without improvement since the best, which patience counts.
        cooldown: epochs of cooldown left after the last reduction.
    """

    factor: float
    best: float | None
    wait: int
    cooldown: int


class ReduceOnPlateau(keras.callbacks.Callback):
    """Lowers the optimizer's ``PlateauScaled`` factor when ``monitor`` stops improving.

    Keras's ``ReduceLROnPlateau`` semantics (monitor, mode, factor, patience, min_delta,
    cooldown, min_lr), but it scales the schedule instead of replacing it. The schedule is
    looked up on the model's optimizer when training begins; a resumed run hands its saved
    ``PlateauState`` to ``resume_from`` first, so the factor and the counters carry over.

    Args:
        spec: the recipe's ``train.lr_schedule.reduce_on_plateau`` section.
    """

    def __init__(self, spec: PlateauSpec) -> None:
        super().__init__()
        self.spec = spec
        self.higher_is_better = _higher_is_better(spec.monitor, spec.mode)
        self.schedule: PlateauScaled | None = None
        self.best: float | None = None
        self.wait = 0
        self.cooldown_counter = 0
        self.reductions: list[tuple[int, float]] = []  # (1-based epoch, rate after it)
        self._resume_from: PlateauState | None = None

    def resume_from(self, state: PlateauState) -> None:
        """Start the next ``fit`` where a checkpointed run stood, instead of afresh."""
        self._resume_from = state

    def state(self) -> PlateauState:
        """Where reduce-on-plateau stands now.

        Raises:
            ValueError: training has not begun, so there is no schedule yet.
        """
        if self.schedule is None:
            raise ValueError("ReduceOnPlateau.state() is known once training has begun.")
        factor = float(keras.ops.convert_to_numpy(self.schedule.factor))
        return PlateauState(factor, self.best, self.wait, self.cooldown_counter)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best, self.wait, self.cooldown_counter = None, 0, 0
        self.schedule = find_plateau(held_rate(self.model))
        if self.schedule is None:
            raise ValueError(
                "ReduceOnPlateau needs an optimizer whose learning rate is a PlateauScaled "
                "schedule (make_schedule builds one when reduce_on_plateau is enabled)."
            )
        state, self._resume_from = self._resume_from, None
        if state is not None:
            self.schedule.factor.assign(state.factor)
            self.best, self.wait, self.cooldown_counter = state.best, state.wait, state.cooldown

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        value = (logs or {}).get(self.spec.monitor)
        if self.schedule is None or value is None or not math.isfinite(float(value)):
            return
        current = float(value)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait < self.spec.patience or not self._above_floor():
            return
        self.schedule.reduce(self.spec.factor)
        self.cooldown_counter, self.wait = self.spec.cooldown, 0
        self.reductions.append((epoch + 1, self._current_rate()))

    def _improved(self, current: float) -> bool:
        if self.best is None:
            return True
        if self.higher_is_better:
            return current > self.best + self.spec.min_delta
        return current < self.best - self.spec.min_delta

    def _current_rate(self) -> float:
        # The optimizer's own reading: its schedule at its step counter.
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _above_floor(self) -> bool:
        # Keras's rule: once the rate is down at min_learning_rate, stop reducing. With no floor
        # a schedule that touched zero (a cosine cycle's end) still gets its factor lowered, as
        # the next restart would otherwise come back at full height.
        floor = self.spec.min_learning_rate
        return floor == 0 or bool(np.float32(self._current_rate()) > np.float32(floor))


def _higher_is_better(monitor: str, mode: str) -> bool:
    if mode != "auto":
        return mode == "max"
    name = monitor.removeprefix("val_")
    return any(word in name for word in ("accuracy", "auc", "precision", "recall", "f1"))


def make_schedule(
    spec: ScheduleSpec, learning_rate: float, epochs: int, steps_per_epoch: int
) -> LearningRate:
    """The learning rate, or a schedule over optimizer steps, from a schedule counted in epochs.

    A plain float comes back only for a constant rate with neither warmup nor reduce-on-plateau,
    so the optimizer keeps a plain rate variable that anything may assign.

    Example: ``step`` with ``step_epochs=5, gamma=0.5`` halves the rate every 5 epochs;
    ``warmup_epochs=1`` first ramps up to it over one epoch.

    Args:
        spec: the recipe's ``train.lr_schedule``.
        learning_rate: lr0, the rate the schedule starts from (after warmup).
        epochs: the run's length; cosine and polynomial decay over it.
        steps_per_epoch: optimizer steps (batches) in one epoch.

    Raises:
        RecipeError: the warmup is as long as the whole run.
    """
    total_steps = max(1, epochs * steps_per_epoch)
    warmup_steps = round(spec.warmup_epochs * steps_per_epoch)
    if spec.warmup_epochs > 0:
        warmup_steps = max(1, warmup_steps)
    if warmup_steps >= total_steps:
        raise RecipeError(
            f"`train.lr_schedule.warmup_epochs` is {spec.warmup_epochs}, but the whole run is "
            f"{epochs} epoch(s): the rate would never leave its warmup. Expected warmup_epochs "
            f"below train.epochs (a warmup of 5–10% of the run is usual)."
        )
    plateau = spec.reduce_on_plateau.enabled
    schedule = _base_schedule(
        spec, learning_rate, max(1, total_steps - warmup_steps), steps_per_epoch
    )
    if schedule is None:
        if not warmup_steps and not plateau:
            return learning_rate
        schedule = ConstantSchedule(learning_rate)
    if warmup_steps:
        schedule = LinearWarmup(schedule, warmup_steps, spec.warmup_start_factor)
    if spec.pace == SchedulePace.TIME_BUDGET:
        schedule = TimePaced(schedule, total_steps)
    if plateau:
        schedule = PlateauScaled(
            schedule, min_learning_rate=spec.reduce_on_plateau.min_learning_rate
        )
    return schedule


def _base_schedule(
    spec: ScheduleSpec, learning_rate: float, decay_steps: int, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule | None:
    """The named schedule over ``decay_steps`` (the run after warmup); None for constant."""
    floor = min(1.0, spec.min_learning_rate / learning_rate)
    name = spec.name
    if name == ScheduleName.CONSTANT:
        return None
    if name == ScheduleName.EXPONENTIAL:  # lr0 · gamma^(epoch), smoothly within an epoch
        return _schedules.ExponentialDecay(learning_rate, steps_per_epoch, spec.gamma)
    if name == ScheduleName.STEP:
        if spec.boundaries is None:
            return _schedules.ExponentialDecay(
                learning_rate, spec.step_epochs * steps_per_epoch, spec.gamma, staircase=True
            )
        # Keras switches value after a boundary step; the first step of epoch b is b × steps.
        boundaries = [round(epoch * steps_per_epoch) - 1 for epoch in spec.boundaries]
        values = [learning_rate * spec.gamma**i for i in range(len(boundaries) + 1)]
        return _schedules.PiecewiseConstantDecay(boundaries, values)
    if name == ScheduleName.COSINE:
        # lr_min + ½(lr0 − lr_min)(1 + cos(π t / T)) over the run (Keras's alpha form)
        return _schedules.CosineDecay(learning_rate, decay_steps=decay_steps, alpha=floor)
    if name == ScheduleName.COSINE_RESTARTS:  # SGDR: cosine cycles, each restart at the peak
        return _schedules.CosineDecayRestarts(
            learning_rate,
            first_decay_steps=max(1, round(spec.restart_epochs * steps_per_epoch)),
            t_mul=spec.restart_period_mult,
            m_mul=spec.restart_peak_mult,
            alpha=floor,
        )
    if name == ScheduleName.POLYNOMIAL:
        return _schedules.PolynomialDecay(
            learning_rate,
            decay_steps=decay_steps,
            end_learning_rate=min(spec.min_learning_rate, learning_rate),
            power=spec.power,
        )
    if name == ScheduleName.ONE_CYCLE:  # up to lr0, then far below it (training/one_cycle.py)
        return one_cycle(spec, learning_rate, decay_steps)
    # inverse time: lr0 / (1 + decay_rate · epoch), smoothly within an epoch
    return _schedules.InverseTimeDecay(learning_rate, steps_per_epoch, spec.decay_rate)


def held_rate(model: keras.Model) -> Any:
    """The rate or schedule the model's optimizer holds (its own ``_learning_rate``)."""
    optimizer = model.optimizer
    # A mixed-precision LossScaleOptimizer holds the real optimizer as inner_optimizer.
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return getattr(optimizer, "_learning_rate", None)


def find_time_paced(learning_rate: Any) -> TimePaced | None:
    """The time-paced wrapper a rate holds (inside a plateau wrapper), if any."""
    while learning_rate is not None and not isinstance(learning_rate, TimePaced):
        learning_rate = getattr(learning_rate, "schedule", None)
    return learning_rate


def find_plateau(learning_rate: Any) -> PlateauScaled | None:
    """The reduce-on-plateau wrapper a schedule made by ``make_schedule`` holds, if any."""
    return learning_rate if isinstance(learning_rate, PlateauScaled) else None
