"""Convolutional networks for images: blocks of conv (→ BN) → activation → max-pool."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.models.io import ModelIO
from dltrain.recipe.schema import CnnSpec


def build_cnn(spec: CnnSpec, io: ModelIO) -> keras.Model:
    """Build a CNN classifier.

    With ``filters: [32, 64]``, ``padding: valid``, ``dense: [64]`` and ``dropout: 0.5`` this is
    exactly the reference script's network.
    """
    io.require("cnn", "image")
    raw, x = io.inputs()
    for b, filters in enumerate(spec.filters, start=1):
        for c in range(1, spec.convs_per_block + 1):
            x = keras.layers.Conv2D(
                filters,
                spec.kernel_size,
                padding=spec.padding,
                use_bias=not spec.batch_norm,  # BN's beta does the bias's job
                activation=None if spec.batch_norm else spec.activation.value,
                name=f"block{b}_conv{c}",
            )(x)
            if spec.batch_norm:
                x = keras.layers.BatchNormalization(
                    momentum=spec.batch_norm_momentum, name=f"block{b}_bn{c}"
                )(x)
                x = keras.layers.Activation(spec.activation.value, name=f"block{b}_act{c}")(x)
        x = keras.layers.MaxPooling2D(spec.pool_size, name=f"block{b}_pool")(x)
        if spec.block_dropout:
            x = keras.layers.Dropout(spec.block_dropout, name=f"block{b}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(spec.dense, start=1):
        x = keras.layers.Dense(units, activation=spec.activation.value, name=f"dense{i}")(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(raw, io.head(x), name="cnn")
