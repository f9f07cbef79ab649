"""Autoencoders whose output is the reconstruction error: an anomaly score for raw inputs.

The network reconstructs the *encoded* input (scaled pixels, standardised table features), so
one builder serves every data kind, and the saved model maps raw inputs straight to a score.
Training minimises that score; the labels are not used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dltrain.backend import keras
from dltrain.manifest import FeatureKind
from dltrain.models.blocks import dense_stack, regularizer
from dltrain.models.io import ModelIO
from dltrain.recipe.models import AutoencoderSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.training.compile import CompileParts
from dltrain.training.hooks import TrainingHooks


@keras.saving.register_keras_serializable(package="dltrain")
def reconstruction_loss(y_true: Any, y_pred: Any) -> Any:
    """The model already outputs each example's error; the loss is its mean (y_true unused)."""
    return keras.ops.mean(y_pred)


@keras.saving.register_keras_serializable(package="dltrain")
class ReconstructionError(keras.layers.Layer):
    """Mean squared difference per example; no gradient flows into the target."""

    def call(self, reconstruction: Any, target: Any) -> Any:
        squared = keras.ops.square(reconstruction - keras.ops.stop_gradient(target))
        return keras.ops.mean(keras.ops.reshape(squared, (keras.ops.shape(squared)[0], -1)), axis=1)

    def compute_output_shape(self, reconstruction_shape: Any, target_shape: Any = None) -> Any:
        return (reconstruction_shape[0],)


def build_autoencoder(spec: AutoencoderSpec, io: ModelIO) -> keras.Model:
    """Build an autoencoder scoring each example by its mean squared reconstruction error."""
    if spec.architecture == "conv":
        io.require("autoencoder (conv)", FeatureKind.IMAGE)
    raw, encoded = io.inputs()
    build = _conv if spec.architecture == "conv" else _dense
    reconstruction = build(encoded, spec)
    score = ReconstructionError(dtype="float32", name="reconstruction_error")(
        reconstruction, encoded
    )
    return keras.Model(raw, score, name="autoencoder")


class AutoencoderTraining(TrainingHooks):
    """An autoencoder learns its own input: the data's labels are unused, the loss is the
    reconstruction error the model outputs."""

    spec: AutoencoderSpec

    def labels(self, y: np.ndarray) -> np.ndarray:
        """Zeros: ``fit`` wants labels, and ``reconstruction_loss`` ignores them."""
        return np.zeros(len(y), dtype="float32")

    def compile(self, model: keras.Model, parts: CompileParts, train: TrainSpec) -> None:
        """The run's optimizer on the mean reconstruction error; no metrics of the task's."""
        model.compile(optimizer=parts.optimizer, loss=reconstruction_loss)


def _dense(x: Any, spec: AutoencoderSpec) -> Any:
    shape = tuple(int(d) for d in x.shape[1:])
    h = keras.layers.Flatten(name="flatten")(x) if len(shape) > 1 else x
    for i, width in enumerate(spec.units, start=1):
        h = dense_stack(h, [width], spec, prefix=f"encoder{i}_")
        if spec.dropout:
            h = keras.layers.Dropout(spec.dropout, name=f"encoder{i}_dropout")(h)
    h = keras.layers.Dense(spec.latent_dim, name="latent")(h)
    for i, width in enumerate(reversed(spec.units), start=1):
        h = dense_stack(h, [width], spec, prefix=f"decoder{i}_")
    h = keras.layers.Dense(math.prod(shape), dtype="float32", name="reconstruction")(h)
    return keras.layers.Reshape(shape, name="reconstruction_shape")(h) if len(shape) > 1 else h


def _conv(x: Any, spec: AutoencoderSpec) -> Any:
    height, width, channels = (int(d) for d in x.shape[1:])
    h = x
    for i, filters in enumerate(spec.filters, start=1):
        h = keras.layers.Conv2D(
            filters,
            3,
            strides=2,
            padding="same",
            activation=spec.activation.value,
            kernel_regularizer=regularizer(spec),
            name=f"encoder{i}",
        )(h)
    down = h.shape[1:]
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(spec.latent_dim, name="latent")(h)
    h = keras.layers.Dense(math.prod(down), activation=spec.activation.value, name="expand")(h)
    h = keras.layers.Reshape(tuple(down), name="unflatten")(h)
    for i, filters in enumerate(reversed(spec.filters), start=1):
        h = keras.layers.Conv2DTranspose(
            filters,
            3,
            strides=2,
            padding="same",
            activation=spec.activation.value,
            name=f"decoder{i}",
        )(h)
    h = keras.layers.Conv2D(channels, 3, padding="same", dtype="float32", name="reconstruction")(h)
    # strided convs round sizes up (28 → 14 → 7 → 4 → 8 …): crop back to the input's size
    return keras.layers.Cropping2D(
        ((0, h.shape[1] - height), (0, h.shape[2] - width)), name="crop"
    )(h)
