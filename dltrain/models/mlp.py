"""Feed-forward networks: dense (→ BN) → activation → dropout per hidden layer."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.models.blocks import dense_stack
from dltrain.models.io import ModelIO
from dltrain.recipe.models import MlpSpec


def build_mlp(spec: MlpSpec, io: ModelIO) -> keras.Model:
    """Build a multi-layer perceptron on any encoded features (flattened when not a vector)."""
    raw, x = io.inputs()
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(spec.units, start=1):
        x = dense_stack(x, [units], spec, prefix=f"hidden{i}_")
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"hidden{i}_dropout")(x)
    return keras.Model(raw, io.head(x), name="mlp")
