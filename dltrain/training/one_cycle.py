"""The one-cycle policy (Smith 2018, as fastai runs it): the rate rises to its peak, then falls
far below its start, while the momentum does the opposite.

``OneCycle`` is the rate over optimizer steps: a half cosine from ``peak / div_factor`` up to
``peak`` over the first ``pct_start`` of the run, then a half cosine down to
``peak / final_div_factor``. ``MomentumCycle`` moves the optimizer's momentum (SGD) or ``beta_1``
(the Adam family) the other way, from ``high`` down to ``low`` while the rate rises and back up
while it falls, set before every batch from the optimizer's own step counter, so a resumed run
cycles from where it stood.

Keras optimizers read their momentum as a Python number, which a compiled train step would
freeze at its first value; ``MomentumCycle`` replaces it with a variable the step reads anew.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dltrain.backend import keras, tf
from dltrain.recipe.choices import OptimizerName
from dltrain.recipe.optimization import ScheduleSpec
from dltrain.training.callbacks import Logs

if TYPE_CHECKING:  # schedules.py imports this module
    from dltrain.training.schedules import TimePaced

# The attribute the cycled value replaces, by optimizer; the others have no momentum to cycle
# (plain sgd has none, rmsprop's is another thing, adagrad keeps no moving average).
CYCLED_ATTRIBUTE = {
    OptimizerName.MOMENTUM: "momentum",
    OptimizerName.NESTEROV: "momentum",
    OptimizerName.ADAM: "beta_1",
    OptimizerName.ADAMW: "beta_1",
    OptimizerName.NADAM: "beta_1",
    OptimizerName.ADAMAX: "beta_1",
}


def _half_cosine(start: Any, end: Any, fraction: Any) -> Any:
    """``start`` at fraction 0 to ``end`` at 1 along half a cosine (flat at both ends)."""
    return end + (start - end) * 0.5 * (1.0 + keras.ops.cos(math.pi * fraction))


@keras.saving.register_keras_serializable(package="dltrain")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Up from ``peak / div_factor`` to ``peak``, then down to ``peak / final_div_factor``.

    Example: ``OneCycle(0.01, total_steps=1000, pct_start=0.25)`` starts at 0.0004, peaks at
    0.01 at step 250 and ends at 1e-7 at step 1000 (and stays there after it).

    Args:
        peak: the highest rate, reached after ``pct_start`` of the steps.
        total_steps: the run's optimizer steps (> 1).
        pct_start: the fraction of the steps spent rising, in (0, 1).
        div_factor: the first rate is ``peak / div_factor`` (>= 1).
        final_div_factor: the last rate is ``peak / final_div_factor`` (>= 1).
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 1e5,
    ) -> None:
        if total_steps < 2:
            raise ValueError(f"Argument `total_steps` must be >= 2. Received: {total_steps}")
        if not 0 < pct_start < 1:
            raise ValueError(f"Argument `pct_start` must be in (0, 1). Received: {pct_start}")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    @property
    def rise_steps(self) -> int:
        """Steps from the start to the peak (at least 1, and at least one left to fall)."""
        return min(self.total_steps - 1, max(1, round(self.pct_start * self.total_steps)))

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        step = ops.cast(step, "float32")
        rise = float(self.rise_steps)
        fall = float(self.total_steps - self.rise_steps)
        up = _half_cosine(self.peak / self.div_factor, self.peak, ops.minimum(step / rise, 1.0))
        after = ops.clip((step - rise) / fall, 0.0, 1.0)
        down = _half_cosine(self.peak, self.peak / self.final_div_factor, after)
        return ops.where(step < rise, up, down)

    def momentum(self, step: float, high: float, low: float) -> float:
        """The cycled momentum at ``step``: ``high`` → ``low`` while rising, back while falling."""
        rise, fall = self.rise_steps, self.total_steps - self.rise_steps
        if step < rise:
            fraction = step / rise
            return low + (high - low) * 0.5 * (1 + math.cos(math.pi * fraction))
        fraction = min(1.0, (step - rise) / fall)
        return high + (low - high) * 0.5 * (1 + math.cos(math.pi * fraction))

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


def one_cycle(spec: ScheduleSpec, learning_rate: float, total_steps: int) -> OneCycle:
    """The recipe's one_cycle schedule peaking at ``learning_rate`` over ``total_steps``."""
    return OneCycle(
        learning_rate,
        max(2, total_steps),
        spec.pct_start,
        spec.div_factor,
        spec.final_div_factor,
    )


def find_one_cycle(learning_rate: Any) -> OneCycle | None:
    """The one-cycle schedule a rate holds (inside warmup or plateau wrappers), if any."""
    while learning_rate is not None and not isinstance(learning_rate, OneCycle):
        learning_rate = getattr(learning_rate, "schedule", None)
    return learning_rate


class CycledValue:
    """A momentum the compiled train step reads from a variable at every step.

    Keras's SGD asks ``momentum != 0`` in Python (whether it keeps momentum slots): that answer
    is the configured value's, fixed for the run; every use as a number reads the variable.
    """

    def __init__(self, value: float) -> None:
        self.configured = float(value)
        self.variable = tf.Variable(self.configured, trainable=False, dtype="float32")

    def __ne__(self, other: object) -> bool:
        return self.configured != other

    def __eq__(self, other: object) -> bool:
        return self.configured == other

    __hash__ = object.__hash__

    def __sub__(self, other: Any) -> Any:
        return tf.convert_to_tensor(self.variable) - other

    def __rsub__(self, other: Any) -> Any:
        return other - tf.convert_to_tensor(self.variable)

    def __mul__(self, other: Any) -> Any:
        return tf.convert_to_tensor(self.variable) * other

    __rmul__ = __mul__


def _as_tensor(
    value: CycledValue, dtype: Any = None, name: Any = None, as_ref: bool = False
) -> Any:
    tensor = value.variable.read_value()
    return tensor if dtype is None else tf.cast(tensor, dtype)


tf.register_tensor_conversion_function(CycledValue, _as_tensor)


class MomentumCycle(keras.callbacks.Callback):
    """Cycles the optimizer's momentum (or ``beta_1``) inversely to a ``OneCycle`` rate.

    Args:
        schedule: the run's one-cycle schedule (its step counts).
        attribute: ``momentum`` (SGD) or ``beta_1`` (Adam family).
        high: the momentum at the start and the end of the run.
        low: the momentum at the rate's peak.
        pace: the run's ``TimePaced`` wrapper around the cycle, when the time budget paces it:
            the momentum then follows the step the rate runs at, not the optimizer's.
    """

    def __init__(
        self,
        schedule: OneCycle,
        attribute: str,
        high: float,
        low: float,
        pace: TimePaced | None = None,
    ) -> None:
        super().__init__()
        self.schedule = schedule
        self.attribute = attribute
        self.high, self.low = high, low
        self.pace = pace
        self.value: CycledValue | None = None

    def _optimizer(self) -> Any:
        optimizer = self.model.optimizer
        return getattr(optimizer, "inner_optimizer", optimizer)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        # A later phase (the transfer family's fine-tuning) compiles an optimizer with a cycle
        # of its own: follow the one the optimizer holds.
        held = find_one_cycle(getattr(self._optimizer(), "_learning_rate", None))
        if held is not None:
            self.schedule = held
        self.value = CycledValue(self.high)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        if self.value is not None:
            setattr(self._optimizer(), self.attribute, self.value)

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        if self.value is not None:
            taken = int(keras.ops.convert_to_numpy(self._optimizer().iterations))
            step = taken if self.pace is None else self.pace.step_at(taken)
            self.value.variable.assign(self.schedule.momentum(step, self.high, self.low))

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        # A plain number again before the epoch's checkpoint saves the optimizer's configuration
        # (Keras serialises its momentum as a number); the compiled step keeps reading the
        # variable it was traced with, and the next epoch puts the cycled value back.
        setattr(self._optimizer(), self.attribute, self.high)

    def current(self) -> float:
        """The momentum the next step uses (``high`` before training)."""
        return self.high if self.value is None else float(self.value.variable.numpy())
