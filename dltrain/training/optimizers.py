"""The recipe's optimizer section → a Keras optimizer."""

from __future__ import annotations

from typing import Any

from dltrain.backend import keras
from dltrain.recipe.choices import OptimizerName
from dltrain.recipe.optimization import OptimizerSpec
from dltrain.training.schedules import LearningRate, make_schedule

__all__ = ["make_optimizer", "make_schedule"]  # make_schedule stays importable from here

_DEFAULT_MOMENTUM = 0.9  # momentum and nesterov: the value nearly every paper and default uses

_ADAPTIVE = {
    OptimizerName.ADAGRAD: keras.optimizers.Adagrad,
    OptimizerName.ADAM: keras.optimizers.Adam,
    OptimizerName.ADAMW: keras.optimizers.AdamW,
    OptimizerName.NADAM: keras.optimizers.Nadam,
    OptimizerName.ADAMAX: keras.optimizers.Adamax,
}


def make_optimizer(
    spec: OptimizerSpec, learning_rate: LearningRate, averages: dict[str, Any] | None = None
) -> keras.optimizers.Optimizer:
    """A Keras optimizer for the recipe's ``train.optimizer`` section.

    Clipping, decoupled weight decay and gradient accumulation are Keras's own, which every
    optimizer takes; they apply in that order to the averaged gradient of an accumulation.

    Args:
        spec: the recipe's ``train.optimizer``.
        learning_rate: a rate or a schedule (``make_schedule``); ``spec.learning_rate`` is not
            read here, so a schedule built from it is not applied twice.
        averages: ``use_ema`` and ``ema_momentum`` when the run keeps averaged weights
            (training/averaging.py ``ema_arguments``).

    Returns:
        The optimizer, not yet built (``model.compile`` builds it).
    """
    # keyword arguments every Keras optimizer takes; settings left unset keep its defaults
    common: dict[str, Any] = {"learning_rate": learning_rate, **(averages or {})}
    for key in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
        value = getattr(spec, key)
        if value is not None:
            common[key] = value
    if spec.gradient_accumulation_steps is not None and spec.gradient_accumulation_steps > 1:
        common["gradient_accumulation_steps"] = spec.gradient_accumulation_steps
    name = spec.name
    if name == OptimizerName.SGD:
        return keras.optimizers.SGD(momentum=spec.momentum or 0.0, **common)
    momentum = _DEFAULT_MOMENTUM if spec.momentum is None else spec.momentum
    if name == OptimizerName.MOMENTUM:
        return keras.optimizers.SGD(momentum=momentum, **common)
    if name == OptimizerName.NESTEROV:
        return keras.optimizers.SGD(momentum=momentum, nesterov=True, **common)
    if name == OptimizerName.RMSPROP:
        return keras.optimizers.RMSprop(momentum=spec.momentum or 0.0, **common)
    optimizer: keras.optimizers.Optimizer = _ADAPTIVE[name](**common)
    return optimizer
