"""Temperature scaling (Guo et al. 2017): one number T, fitted on the validation split, that
softens (T > 1) or sharpens (T < 1) a classifier's probabilities without changing which class
it predicts, stored inside the saved model as its last layer.

dltrain's classifiers end in softmax (or a sigmoid), so the logits are recovered from the
probabilities: softmax is shift-invariant, so log(p) serves as the logits of a softmax head, and
log(p / (1 - p)) is a sigmoid head's. The layer computes softmax(log(p) / T) (sigmoid(logit / T)
for one column), so predict, export and serve all answer calibrated probabilities from raw
inputs, and evaluate undoes it (``uncalibrated``) to show the expected calibration error before
and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltrain.backend import keras

# Probabilities are clipped before their logarithm: a softmax column can underflow to 0, and a
# sigmoid's float32 output reaches 1. The clip changes no prediction (argmax, or which side of
# 0.5) and caps a sigmoid's logit at about ±16, a softmax's log-probability at -69.
SOFTMAX_FLOOR = 1e-30
SIGMOID_EDGE = 1e-7
# T is searched between these (log scale): far beyond any model worth calibrating both ways.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


@keras.saving.register_keras_serializable(package="dltrain")
class TemperatureScaling(keras.layers.Layer):
    """Divide a classifier's logits (recovered from its probabilities) by a fitted temperature.

    Args:
        temperature: T > 0; 1 changes nothing, above 1 makes the model less confident.

    Example:
        >>> outputs = TemperatureScaling(1.7, name="temperature_scaling")(model.output)
    """

    def __init__(self, temperature: float, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not (isinstance(temperature, int | float) and temperature > 0):
            raise ValueError(
                f"Argument `temperature` must be a number > 0. Received: temperature={temperature}"
            )
        self.temperature = float(temperature)

    def call(self, probabilities: Any) -> Any:
        ops = keras.ops
        p = ops.cast(probabilities, "float32")
        if p.shape[-1] == 1:  # a sigmoid head
            p = ops.clip(p, SIGMOID_EDGE, 1.0 - SIGMOID_EDGE)
            return ops.sigmoid((ops.log(p) - ops.log(1.0 - p)) / self.temperature)
        return ops.softmax(ops.log(ops.maximum(p, SOFTMAX_FLOOR)) / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted temperature and the validation log loss before and after it."""

    temperature: float
    log_loss_before: float
    log_loss_after: float
    num_examples: int


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """Logits whose softmax is ``probabilities``: log(p); a sigmoid column becomes [0, logit].

    Args:
        probabilities: shape (n, classes), or (n, 1) for a sigmoid head.

    Returns:
        Shape (n, classes), or (n, 2) for a sigmoid head, in float64.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1)
    if p.shape[1] == 1:
        p = np.clip(p, SIGMOID_EDGE, 1.0 - SIGMOID_EDGE)
        return np.concatenate([np.zeros_like(p), np.log(p) - np.log1p(-p)], axis=1)
    return np.log(np.maximum(p, SOFTMAX_FLOOR))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def log_loss_at(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / temperature)."""
    rows = np.arange(len(labels))
    return float(-_log_softmax(logits / temperature)[rows, labels].mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> TemperatureFit:
    """The temperature minimising the log loss of ``probabilities`` on ``labels``.

    A bounded one-dimensional search over log T (Brent's method, scipy), T in
    [``MIN_TEMPERATURE``, ``MAX_TEMPERATURE``].

    Args:
        probabilities: a classifier's outputs, shape (n, classes) or (n, 1).
        labels: integer class labels, shape (n,).

    Returns:
        T, and the log loss at T = 1 and at T.

    Raises:
        ValueError: no examples, or labels and outputs of different lengths.
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) == 0 or len(labels) != len(probabilities):
        raise ValueError(
            f"Temperature scaling needs one label per output; received {len(labels)} labels "
            f"and {len(probabilities)} outputs."
        )
    logits = logits_of(probabilities)
    found = minimize_scalar(
        lambda log_t: log_loss_at(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    temperature = float(np.exp(found.x))
    before = log_loss_at(logits, labels, 1.0)
    after = log_loss_at(logits, labels, temperature)
    if after > before:  # the search never does worse than T = 1, which it may not land on
        temperature, after = 1.0, before
    return TemperatureFit(temperature, before, after, len(labels))


def scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``probabilities`` with their logits multiplied by ``1 / temperature`` (NumPy), shaped
    as given: what ``TemperatureScaling`` computes."""
    p = np.asarray(probabilities, dtype=np.float64)
    logits = logits_of(p) / temperature
    out = np.exp(_log_softmax(logits))
    return out[:, 1:].reshape(p.shape) if p.reshape(len(p), -1).shape[1] == 1 else out


def uncalibrated(outputs: np.ndarray, temperature: float) -> np.ndarray:
    """What the model answered before its temperature layer: the outputs scaled by 1 / T."""
    return scaled(outputs, 1.0 / temperature)


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """``model`` with a ``TemperatureScaling`` layer after its probabilities.

    The new model shares ``model``'s layers and takes the same inputs (a table's named inputs
    included), so it saves, loads and exports as the original did.

    Args:
        model: a functional classifier with one probability output.
        temperature: the fitted T.

    Returns:
        The calibrated model, named as ``model`` was.
    """
    scaling = TemperatureScaling(temperature, name="temperature_scaling")
    return keras.Model(model.input, scaling(model.output), name=model.name)


def temperature_of(model: keras.Model) -> float | None:
    """The temperature a model was calibrated with; None when it has no temperature layer."""
    for layer in reversed(getattr(model, "layers", [])):
        if isinstance(layer, TemperatureScaling):
            return layer.temperature
    return None
