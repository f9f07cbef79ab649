"""Layers several families share: regularisers, dense stacks, image augmentation."""

from __future__ import annotations

from typing import Any

from dltrain.backend import keras
from dltrain.recipe.models import AugmentationSpec, ModelBase


def regularizer(spec: ModelBase) -> keras.regularizers.Regularizer | None:
    """The L1/L2 weight penalty the recipe asks for, or None."""
    if not spec.l1 and not spec.l2:
        return None
    return keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2)


def dense_stack(x: Any, units: list[int], spec: ModelBase, prefix: str = "dense") -> Any:
    """Dense (→ BN) → activation for each width, with the recipe's regularisation."""
    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(
            width,
            use_bias=not spec.batch_norm,
            kernel_regularizer=regularizer(spec),
            name=f"{prefix}{i}",
        )(x)
        if spec.batch_norm:
            x = keras.layers.BatchNormalization(
                momentum=spec.batch_norm_momentum, name=f"{prefix}{i}_bn"
            )(x)
        x = keras.layers.Activation(spec.activation.value, name=f"{prefix}{i}_act")(x)
    return x


def augment(x: Any, spec: AugmentationSpec, value_range: tuple[float, float]) -> Any:
    """Random image transformations; Keras turns them off outside training."""
    if spec.flip != "none":
        x = keras.layers.RandomFlip(spec.flip, name="augment_flip")(x)
    if spec.rotation:
        x = keras.layers.RandomRotation(spec.rotation, name="augment_rotation")(x)
    if spec.zoom:
        x = keras.layers.RandomZoom(spec.zoom, name="augment_zoom")(x)
    if spec.translation:
        x = keras.layers.RandomTranslation(
            spec.translation, spec.translation, name="augment_translation"
        )(x)
    if spec.contrast:
        x = keras.layers.RandomContrast(
            spec.contrast, value_range=value_range, name="augment_contrast"
        )(x)
    return x
