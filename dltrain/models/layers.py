"""Pieces shared by the builders: the model's own input scaling and its classification head."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.models import InputSpec


def scaled_input(inputs: InputSpec) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The raw input and the same input rescaled as the prepared dataset says.

    Scaling lives in the model, so a saved model takes raw pixels as the source had them.
    """
    raw = keras.Input(shape=inputs.shape, dtype=inputs.dtype, name="input")
    scaled = keras.layers.Rescaling(inputs.scale, inputs.offset, name="scaling")(raw)
    return raw, scaled


def classification_head(x: keras.KerasTensor, inputs: InputSpec) -> keras.KerasTensor:
    """Class probabilities, kept in float32 even under mixed precision for a stable loss."""
    return keras.layers.Dense(
        inputs.num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
