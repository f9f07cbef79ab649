"""The loss and the metrics training logs, by task."""

from __future__ import annotations

from typing import Any

from dltrain.backend import keras
from dltrain.tasks import Task


def default_loss(task: Task) -> str:
    """Cross-entropy for classes (integer labels); mean squared error for numbers."""
    return "sparse_categorical_crossentropy" if task.is_classification else "mse"


def training_metrics(task: Task) -> list[Any]:
    """Metrics logged every epoch (and their ``val_`` twins); regression ones in target units."""
    if task.is_classification:
        return ["accuracy"]
    return [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.RootMeanSquaredError(name="rmse"),
    ]


def logged_names(task: Task) -> list[str]:
    """Every name an epoch's logs carry, for checking ``monitor`` before training starts."""
    if task == Task.RECONSTRUCTION:
        names = ["loss"]  # the mean reconstruction error
    elif task.is_classification:
        names = ["loss", "accuracy"]
    else:
        names = ["loss", "mae", "rmse"]
    return [*names, *(f"val_{n}" for n in names)]
