"""Temperature scaling: the fit, the Keras layer inside a saved model, and undoing it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.evaluation.calibration import (
    TemperatureScaling,
    fit_temperature,
    log_loss_at,
    logits_of,
    scaled,
    temperature_of,
    uncalibrated,
    with_temperature,
)
from dltrain.evaluation.metrics import ClassificationScorer
from dltrain.models.saving import load_model


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _noisy_labels(
    rng: np.random.Generator, n: int, classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, the true logits' weights, and labels drawn from the true probabilities."""
    x = rng.normal(size=(n, 2)).astype("float32")
    weights = rng.normal(size=(2, classes)).astype("float32")
    true = _softmax(x @ weights)
    labels = np.array([rng.choice(classes, p=p) for p in true])
    return x, weights, labels


def test_an_over_confident_model_gets_a_temperature_above_one() -> None:
    rng = np.random.default_rng(0)
    x, weights, labels = _noisy_labels(rng, 2000, 3)
    over_confident = _softmax(4.0 * (x @ weights))  # logits four times too large
    fit = fit_temperature(over_confident, labels)
    assert 3.0 < fit.temperature < 5.5  # about the factor the logits were inflated by
    assert fit.log_loss_after < fit.log_loss_before - 0.1
    calibrated = scaled(over_confident, fit.temperature)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), over_confident.argmax(axis=1))
    before = ClassificationScorer(labels, over_confident, ["a", "b", "c"]).headline()
    after = ClassificationScorer(labels, calibrated, ["a", "b", "c"]).headline()
    assert after["expected_calibration_error"] < before["expected_calibration_error"] / 2


def test_a_sigmoid_column_is_calibrated_as_a_two_class_softmax() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=3000)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-z))).astype(int)
    over_confident = (1 / (1 + np.exp(-3.0 * z)))[:, None]  # one sigmoid column
    fit = fit_temperature(over_confident, labels)
    assert 2.3 < fit.temperature < 3.8
    calibrated = scaled(over_confident, fit.temperature)
    assert calibrated.shape == over_confident.shape
    np.testing.assert_array_equal(calibrated > 0.5, over_confident > 0.5)
    np.testing.assert_allclose(uncalibrated(calibrated, fit.temperature), over_confident, atol=1e-9)


def test_an_under_confident_model_is_sharpened() -> None:
    rng = np.random.default_rng(2)
    x, weights, labels = _noisy_labels(rng, 2000, 4)
    timid = _softmax(0.3 * (x @ weights))
    fit = fit_temperature(timid, labels)
    assert fit.temperature < 0.6
    assert log_loss_at(logits_of(timid), labels, fit.temperature) == pytest.approx(
        fit.log_loss_after
    )


def test_a_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temperature"):
        TemperatureScaling(0.0)
    with pytest.raises(ValueError, match="one label per output"):
        fit_temperature(np.full((3, 2), 0.5), np.array([0, 1]))


def test_the_temperature_lives_in_the_saved_model(tmp_path: Path) -> None:
    """A deliberately over-confident Keras classifier (weights scaled up 6×) over named table
    inputs: calibrated on one half, it keeps its predictions, loses log loss on the other half,
    and a saved and reloaded model answers the same calibrated probabilities."""
    rng = np.random.default_rng(3)
    x, weights, labels = _noisy_labels(rng, 1200, 3)
    inputs = {name: keras.Input((1,), name=name) for name in ("rooms", "area")}
    joined = keras.layers.Concatenate()(list(inputs.values()))
    head = keras.layers.Dense(3, activation="softmax", name="probabilities")
    model = keras.Model(inputs, head(joined))
    head.set_weights([6.0 * weights, np.zeros(3, dtype="float32")])
    columns = {"rooms": x[:, :1], "area": x[:, 1:]}
    raw = model.predict(columns, verbose=0)
    fit = fit_temperature(raw[:600], labels[:600])
    assert fit.temperature > 1.5

    calibrated = with_temperature(model, fit.temperature)
    assert sorted(calibrated.input) == ["area", "rooms"]
    path = tmp_path / "model.keras"
    calibrated.save(path)
    loaded = load_model(path, compile=False)
    assert temperature_of(loaded) == pytest.approx(fit.temperature)
    assert temperature_of(model) is None
    answered = loaded.predict(columns, verbose=0)
    np.testing.assert_array_equal(answered.argmax(axis=1), raw.argmax(axis=1))
    np.testing.assert_allclose(answered, scaled(raw, fit.temperature), atol=1e-5)
    held_out = np.arange(600, 1200)
    loss_raw = log_loss_at(logits_of(raw[held_out]), labels[held_out], 1.0)
    loss_calibrated = log_loss_at(logits_of(answered[held_out]), labels[held_out], 1.0)
    assert loss_calibrated < loss_raw - 0.1
    np.testing.assert_allclose(uncalibrated(answered, fit.temperature), raw, atol=1e-4)
