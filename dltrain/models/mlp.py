"""Feed-forward networks: flatten, then dense (→ BN) → activation → dropout per hidden layer."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.models.io import ModelIO
from dltrain.recipe.schema import MlpSpec


def build_mlp(spec: MlpSpec, io: ModelIO) -> keras.Model:
    """Build a multi-layer perceptron on any encoded features (flattened when not a vector)."""
    raw, x = io.inputs()
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(spec.units, start=1):
        x = keras.layers.Dense(units, use_bias=not spec.batch_norm, name=f"dense{i}")(x)
        if spec.batch_norm:
            x = keras.layers.BatchNormalization(momentum=spec.batch_norm_momentum, name=f"bn{i}")(x)
        x = keras.layers.Activation(spec.activation.value, name=f"act{i}")(x)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout{i}")(x)
    return keras.Model(raw, io.head(x), name="mlp")
