"""Convolutional networks for images: blocks of conv (→ BN) → activation → max-pool."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.manifest import FeatureKind
from dltrain.models.blocks import augment, dense_stack, regularizer
from dltrain.models.io import ModelIO
from dltrain.models.mixing import BlendingTraining
from dltrain.recipe.models import CnnSpec


def build_cnn(spec: CnnSpec, io: ModelIO) -> keras.Model:
    """Build a CNN.

    With ``filters: [32, 64]``, ``padding: valid``, ``dense: [64]`` and ``dropout: 0.5`` this is
    exactly the reference script's network.
    """
    io.require("cnn", FeatureKind.IMAGE)
    raw, x = io.inputs()
    x = augment(x, spec.augmentation, io.image_value_range())
    for b, filters in enumerate(spec.filters, start=1):
        shortcut = x
        for c in range(1, spec.convs_per_block + 1):
            x = keras.layers.Conv2D(
                filters,
                spec.kernel_size,
                padding=spec.padding,
                use_bias=not spec.batch_norm,  # BN's beta does the bias's job
                kernel_regularizer=regularizer(spec),
                name=f"block{b}_conv{c}",
            )(x)
            if spec.batch_norm:
                x = keras.layers.BatchNormalization(
                    momentum=spec.batch_norm_momentum, name=f"block{b}_bn{c}"
                )(x)
            if not spec.residual or c < spec.convs_per_block:
                x = keras.layers.Activation(spec.activation.value, name=f"block{b}_act{c}")(x)
        if spec.residual:
            if shortcut.shape[-1] != filters:  # match channels with a 1×1 projection
                shortcut = keras.layers.Conv2D(filters, 1, name=f"block{b}_projection")(shortcut)
            x = keras.layers.Add(name=f"block{b}_add")([x, shortcut])
            x = keras.layers.Activation(spec.activation.value, name=f"block{b}_out")(x)
        x = keras.layers.MaxPooling2D(spec.pool_size, name=f"block{b}_pool")(x)
        if spec.block_dropout:
            dropout = (
                keras.layers.SpatialDropout2D if spec.spatial_dropout else keras.layers.Dropout
            )
            x = dropout(spec.block_dropout, name=f"block{b}_dropout")(x)
    if spec.global_pooling:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    x = dense_stack(x, spec.dense, spec)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(raw, io.head(x), name="cnn")


class CnnTraining(BlendingTraining):
    """A CNN trains as any image classifier does (models/mixing.py)."""

    spec: CnnSpec
