"""What a model predicts. Light: the recipe, the manifest and the CLI all speak these names."""

from __future__ import annotations

from enum import StrEnum

# The most classes a classifier's target may have: beyond, a column is almost always an
# identifier or a number to regress, and a softmax over it would dwarf the rest of the model.
MAX_CLASSES = 1_000


class Task(StrEnum):
    BINARY = "binary"  # two classes; the model outputs a probability per class
    MULTICLASS = "multiclass"
    REGRESSION = "regression"  # one or more numeric targets, in their original units
    FORECASTING = "forecasting"  # targets `horizon` steps ahead of a window of `lookback` steps
    RECONSTRUCTION = "reconstruction"  # an autoencoder's: its output is the reconstruction error
    GENERATION = "generation"  # a GAN's: it learns to make new examples like the data

    @property
    def is_classification(self) -> bool:
        return self in (Task.BINARY, Task.MULTICLASS)
