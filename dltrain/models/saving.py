"""Load any model dltrain saved, with every custom object it may hold registered first."""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from dltrain.backend import keras

# Modules defining @register_keras_serializable objects that saved models can reference
# (custom layers, losses, learning-rate schedules). Importing them registers the objects.
CUSTOM_OBJECT_MODULES = (
    "dltrain.evaluation.calibration",
    "dltrain.models.autoencoder",
    "dltrain.models.blocks",
    "dltrain.models.gan",
    "dltrain.models.io",
    "dltrain.models.mlp",
    "dltrain.training.losses",
    "dltrain.training.schedules",
)


def load_model(path: Path, *, compile: bool = True) -> keras.Model:
    """``keras.models.load_model`` for models written by dltrain (checkpoints included).

    Raises:
        ValueError: the file is not a ``.keras`` archive at all (Keras itself would report a
            truncated or overwritten file as "File not found").
    """
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path.name} is not a .keras archive ({path.stat().st_size:,} bytes that are not a "
            f"zip file): it was truncated or overwritten"
        )
    for name in CUSTOM_OBJECT_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: let it show
                raise
    model: keras.Model = keras.models.load_model(path, compile=compile)
    return model
