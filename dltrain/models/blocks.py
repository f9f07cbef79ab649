"""Layers several families share: regularisers, dense stacks, image augmentation."""

from __future__ import annotations

from typing import Any

from dltrain.backend import keras, tf
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
    """Random image transformations; Keras turns them off outside training.

    MixUp and CutMix are not layers here: they blend labels too, so they act on the training
    batches (models/mixing.py).
    """
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
    if spec.crop is not None:
        # black, as the raw pixels' low end scales: what padding a raw image with 0 gives
        x = RandomPaddedCrop(spec.crop.padding, fill_value=value_range[0], name="augment_crop")(x)
    return x


@keras.saving.register_keras_serializable(package="dltrain")
class RandomPaddedCrop(keras.layers.Layer):
    """Pad images by ``padding`` pixels on each side, then crop each one back to its size at a
    random offset: a random shift of up to ``padding`` pixels either way, the uncovered border
    filled with ``fill_value``. Idle at inference.

    Keras's own ``RandomCrop`` does not fit: at inference it resizes the (padded) input to the
    output size, so a model built as ZeroPadding2D → RandomCrop would see shrunken images
    outside training. ``RandomTranslation`` shifts by fractions of a pixel and interpolates.

    Example:
        >>> crop = RandomPaddedCrop(2, seed=0)
        >>> tuple(crop(keras.ops.ones((1, 8, 8, 1)), training=True).shape)
        (1, 8, 8, 1)

    Args:
        padding: pixels added on each side (>= 1).
        fill_value: the value of the added pixels.
        seed: fixes the offsets drawn.
    """

    def __init__(
        self, padding: int, fill_value: float = 0.0, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if padding < 1:
            raise ValueError(f"Argument `padding` must be >= 1. Received: padding={padding}")
        self.padding = int(padding)
        self.fill_value = float(fill_value)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training:
            return x
        p = self.padding
        height, width = x.shape[1], x.shape[2]
        padded = tf.pad(
            x,
            [[0, 0], [p, p], [p, p], [0, 0]],
            constant_values=tf.cast(self.fill_value, x.dtype),
        )
        # one (row, column) offset per image in [0, 2p]; offset p is the original image
        offsets = keras.random.randint(
            (tf.shape(x)[0], 2), 0, 2 * p + 1, dtype="int32", seed=self.generator
        )
        rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
        cols = offsets[:, 1:] + tf.range(width)[tf.newaxis]
        cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(cropped, cols, axis=2, batch_dims=1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "padding": self.padding,
            "fill_value": self.fill_value,
            "seed": self.seed,
        }


def _training_only() -> tuple[type, ...]:
    """The layers that act only in training: random image transformations."""
    layers = keras.layers
    return (
        layers.RandomFlip,
        layers.RandomRotation,
        layers.RandomZoom,
        layers.RandomTranslation,
        layers.RandomContrast,
        RandomPaddedCrop,
    )


def has_training_only_layers(model: keras.Model) -> bool:
    """Whether ``model`` (or a model nested in it) holds a random augmentation layer."""
    return any(isinstance(layer, _training_only()) for layer in model._flatten_layers())


def inference_copy(model: keras.Model) -> keras.Model:
    """``model`` without its training-only layers: each random augmentation passes its input
    through, as it does at inference; every other layer is the same object, weights shared.

    An exporter traces the graph, and Keras's random layers put stateless random ops in it
    (``StatelessRandomGetKeyCounter``) that TFLite has no kernel for, though they never act
    outside training. A model without such a layer is returned as it is.

    Example:
        >>> inputs = keras.Input((8, 8, 1))
        >>> model = keras.Model(inputs, keras.layers.RandomFlip()(inputs))
        >>> has_training_only_layers(inference_copy(model))
        False
    """
    if not has_training_only_layers(model) or isinstance(model, keras.Sequential):
        return model
    skipped = _training_only()

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        return args[0] if isinstance(layer, skipped) else layer(*args, **kwargs)

    return keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call, recursive=True
    )


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` computing in float32 throughout, with the same weights; as it is if it does.

    A model trained under ``mixed_bfloat16`` (``train.mixed_precision: on`` on a CPU) keeps
    float32 weights but computes in bfloat16, which TFLite has no kernels for and few runtimes
    run fast. An export is meant for any runtime, so it computes in float32 (as accurately as
    the model's weights allow).
    """
    if all(layer.compute_dtype != "bfloat16" for layer in model._flatten_layers()):
        return model

    def in_float32(layer: Any) -> Any:
        config = layer.get_config()
        if layer.compute_dtype == "bfloat16":
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=in_float32, recursive=True)
    copy.set_weights(model.get_weights())
    return copy
