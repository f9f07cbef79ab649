"""Model builders, one family per module, found by name.

This module stays light (no TensorFlow) so the CLI can list and check family names; the builder
module is imported only when a model is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

# family → "module:function"; each builder is build_<family>(spec, inputs) -> keras.Model
BUILDERS = {
    "mlp": "dltrain.models.mlp:build_mlp",
    "cnn": "dltrain.models.cnn:build_cnn",
}


@dataclass(frozen=True)
class InputSpec:
    """What a builder needs to know about the data it will see."""

    shape: tuple[int, ...]
    dtype: str
    num_classes: int
    scale: float = 1.0  # the prepared dataset's scaling, applied inside the model
    offset: float = 0.0


def build_model(spec: Any, inputs: InputSpec) -> keras.Model:
    """Build the model the recipe's ``model`` section describes."""
    module_name, function = BUILDERS[spec.family].split(":")
    builder = getattr(importlib.import_module(module_name), function)
    model: keras.Model = builder(spec, inputs)
    return model
