"""Model builders, one family per module, found by name.

This module stays light (no TensorFlow) so the CLI can list and check family names; the builder
module is imported only when a model is built. A builder makes the middle of a model:
``build_<family>(spec, io) -> keras.Model``, with ``io`` (models/io.py) giving the inputs, with
their fitted preprocessing, and the output head for the task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from dltrain.models.io import ModelIO

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


def build_model(spec: Any, io: ModelIO) -> keras.Model:
    """Build the model the recipe's ``model`` section describes for the prepared data."""
    if getattr(spec, "clip_to_target_range", False):  # families with a head (PredictorBase)
        io = io.clipped()
    module_name, function = BUILDERS[spec.family].split(":")
    builder = getattr(importlib.import_module(module_name), function)
    model: keras.Model = builder(spec, io)
    return model
