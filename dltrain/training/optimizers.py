"""Recipe optimizer and schedule sections → Keras objects."""

from __future__ import annotations

from typing import Any

from dltrain.backend import keras
from dltrain.recipe.schema import OptimizerName, OptimizerSpec, ScheduleName, ScheduleSpec

_DEFAULT_MOMENTUM = 0.9


def make_schedule(
    spec: ScheduleSpec, learning_rate: float, epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate, or a schedule over optimizer steps, from a schedule counted in epochs.

    Example: ``step`` with ``step_epochs=5, gamma=0.5`` halves the rate every 5 epochs.
    """
    if spec.name == ScheduleName.CONSTANT:
        return learning_rate
    schedules = keras.optimizers.schedules
    if spec.name == ScheduleName.EXPONENTIAL:  # lr0 · gamma^(epoch), smoothly within an epoch
        return schedules.ExponentialDecay(learning_rate, steps_per_epoch, spec.gamma)
    if spec.name == ScheduleName.STEP:
        return schedules.ExponentialDecay(
            learning_rate, spec.step_epochs * steps_per_epoch, spec.gamma, staircase=True
        )
    # cosine: lr_min + ½(lr0 − lr_min)(1 + cos(π t / T)) over the whole run (Keras's alpha form)
    return schedules.CosineDecay(
        learning_rate,
        decay_steps=max(1, epochs * steps_per_epoch),
        alpha=min(1.0, spec.min_learning_rate / learning_rate),
    )


def make_optimizer(
    spec: OptimizerSpec, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
) -> keras.optimizers.Optimizer:
    """A Keras optimizer for the recipe's ``train.optimizer`` section."""
    common: dict[str, Any] = {"learning_rate": learning_rate}
    for key in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
        value = getattr(spec, key)
        if value is not None:
            common[key] = value
    name = spec.name
    momentum = _DEFAULT_MOMENTUM if spec.momentum is None else spec.momentum
    if name == OptimizerName.SGD:
        return keras.optimizers.SGD(**common)
    if name == OptimizerName.MOMENTUM:
        return keras.optimizers.SGD(momentum=momentum, **common)
    if name == OptimizerName.NESTEROV:
        return keras.optimizers.SGD(momentum=momentum, nesterov=True, **common)
    if name == OptimizerName.RMSPROP:
        return keras.optimizers.RMSprop(momentum=spec.momentum or 0.0, **common)
    classes = {
        OptimizerName.ADAGRAD: keras.optimizers.Adagrad,
        OptimizerName.ADAM: keras.optimizers.Adam,
        OptimizerName.ADAMW: keras.optimizers.AdamW,
        OptimizerName.NADAM: keras.optimizers.Nadam,
    }
    optimizer: keras.optimizers.Optimizer = classes[name](**common)
    return optimizer
