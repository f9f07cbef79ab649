"""Model builders, one family per module, found by name, with how each family trains.

This module stays light (no TensorFlow) so the CLI can list and check family names; the builder
module is imported only when a model is built. A builder makes the middle of a model:
``build_<family>(spec, io) -> keras.Model``, with ``io`` (models/io.py) giving the inputs, with
their fitted preprocessing, and the output head for the task. A family that trains unlike a
predictor declares its ``TrainingHooks`` (training/hooks.py) beside its builder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dltrain.tasks import Task

if TYPE_CHECKING:
    import keras

    from dltrain.models.io import ModelIO
    from dltrain.training.hooks import TrainingHooks

# family → "module:function"
BUILDERS = {
    "mlp": "dltrain.models.mlp:build_mlp",
    "cnn": "dltrain.models.cnn:build_cnn",
    "rnn": "dltrain.models.rnn:build_rnn",
    "text": "dltrain.models.text:build_text",
    "autoencoder": "dltrain.models.autoencoder:build_autoencoder",
    "transfer": "dltrain.models.transfer:build_transfer",
    "gan": "dltrain.models.gan:build_gan",
}

# family → "module:class" of its training hooks, beside its builder; a family not named here
# ends in the task's head and trains as a predictor
TRAINING = {
    "autoencoder": "dltrain.models.autoencoder:AutoencoderTraining",
    "cnn": "dltrain.models.cnn:CnnTraining",
    "transfer": "dltrain.models.transfer:TransferTraining",
    "gan": "dltrain.models.gan:GanTraining",
}
PREDICTOR_TRAINING = "dltrain.training.hooks:TrainingHooks"

# family → the task it learns whatever the prepared data's target. Declared here, light, rather
# than only in the family's hooks, so evaluate and predict can tell a run's task from the family
# its recipe names without building anything; a family not named here learns the data's task.
TASKS = {
    "autoencoder": Task.RECONSTRUCTION,  # its output is each example's reconstruction error
    "gan": Task.GENERATION,  # it makes new images; the data's labels are unused
}


def build_model(spec: Any, io: ModelIO) -> keras.Model:
    """Build the model the recipe's ``model`` section describes for the prepared data."""
    if getattr(spec, "clip_to_target_range", False):  # families with a head (PredictorBase)
        io = io.clipped()
    model: keras.Model = _resolve(BUILDERS[spec.family])(spec, io)
    return model


def training_hooks(spec: Any) -> TrainingHooks:
    """How the family of the recipe's ``model`` section trains (training/hooks.py).

    Args:
        spec: the recipe's ``model`` section.

    Returns:
        The family's hooks, holding ``spec``.
    """
    hooks: TrainingHooks = _resolve(TRAINING.get(spec.family, PREDICTOR_TRAINING))(spec)
    return hooks


def family_task(family: str | None) -> Task | None:
    """The task a model family learns whatever its data's, or None when it learns the data's.

    Args:
        family: the family a recipe's ``model`` section names (None: unknown).

    Returns:
        ``Task.RECONSTRUCTION`` for autoencoders, ``Task.GENERATION`` for GANs, else None.
    """
    return TASKS.get(family) if family is not None else None


def _resolve(target: str) -> Any:
    """The object a "module:name" string names, importing its module on first use."""
    module_name, name = target.split(":")
    return getattr(importlib.import_module(module_name), name)
