"""The LR range test on tiny synthetic data, and how it reads a loss curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.training.lr_finder import (
    RangeTestResult,
    RangeTestSpec,
    plot_range_test,
    range_test,
    read_curve,
    smooth,
)


def sweep(num: int, low: float = 1e-6, high: float = 1.0) -> np.ndarray:
    return np.geomspace(low, high, num)


def test_read_curve_finds_the_steepest_descent_and_the_minimum() -> None:
    rates = sweep(200)
    x = np.log10(rates)
    # A loss that falls along a logistic centred at 1e-3 (steepest there), bottoms out near 1e-1
    # and then blows up.
    loss = 2.0 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1, (x + 1) ** 2 * 20, 0.0)
    steepest, minimum = read_curve(list(rates), list(loss))
    assert steepest is not None and minimum is not None
    assert math.log10(steepest) == pytest.approx(-3, abs=0.05)
    assert math.log10(minimum) == pytest.approx(-1, abs=0.2)


def test_a_loss_that_never_falls_gives_no_suggestion() -> None:
    rates = list(sweep(50))
    assert read_curve(rates, list(np.linspace(1.0, 3.0, 50))) == (None, None)
    assert read_curve(rates[:3], [3.0, 2.0, 1.0]) == (None, None)
    result = RangeTestResult(rates, [1.0] * 50, [1.0] * 50, "completed", None, None)
    assert result.suggestion is None


def test_smoothing_has_no_lag() -> None:
    # A step down in the middle: a one-way moving average would put the drop late; run both
    # ways, the smoothed curve crosses the midpoint where the data does.
    values = [2.0] * 50 + [1.0] * 50
    smoothed = np.asarray(smooth(values, 0.9))
    crossing = int(np.argmax(smoothed < 1.5))
    assert abs(crossing - 50) <= 1
    assert smoothed[0] == pytest.approx(2.0, abs=0.01) and smoothed[-1] == pytest.approx(
        1.0, abs=0.01
    )


def test_spec_checks_its_range() -> None:
    with pytest.raises(ValueError, match="start_learning_rate < end_learning_rate"):
        RangeTestSpec(start_learning_rate=1.0, end_learning_rate=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        RangeTestSpec(num_steps=3)
    spec = RangeTestSpec(start_learning_rate=1e-4, end_learning_rate=1e5, num_steps=10)
    assert [spec.rate_at(i) for i in range(10)] == pytest.approx([10.0**e for e in range(-4, 6)])


def tiny_classifier() -> tuple[keras.Model, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 256, 16)] * 10
    return model, batches


def test_range_test_on_tiny_data(tmp_path: Path) -> None:
    model, batches = tiny_classifier()
    before = [w.copy() for w in model.get_weights()]
    spec = RangeTestSpec(start_learning_rate=1e-5, end_learning_rate=100.0, num_steps=120)
    seen: list[tuple[int, float, float]] = []
    result = range_test(
        model,
        batches,
        compile_probe=lambda probe: probe.compile(
            optimizer=keras.optimizers.SGD(1e-5), loss=keras.losses.SparseCategoricalCrossentropy()
        ),
        spec=spec,
        on_step=lambda *step: seen.append(step),
    )
    # The model itself is untouched: the sweep trained a copy.
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    n = len(result.learning_rates)
    assert 20 < n < 120 and result.stopped in ("diverged", "non_finite")  # SGD at 100 blows up
    assert result.learning_rates == pytest.approx([spec.rate_at(i) for i in range(n)])
    assert len(result.losses) == len(result.smoothed_losses) == n
    assert [s for s, _, _ in seen][:n] == list(range(n))
    # Each logged loss is that batch's own, not Keras's running mean over calls.
    assert result.losses[0] == pytest.approx(seen[0][2]) and result.losses[-1] == seen[n - 1][2]
    assert result.suggestion is not None and result.steepest_learning_rate is not None
    assert spec.start_learning_rate < result.suggestion < result.learning_rates[-1]
    assert result.suggestion == pytest.approx(result.minimum_learning_rate / 10)  # type: ignore[operator]
    lowest = int(np.argmin(result.smoothed_losses))
    assert result.smoothed_losses[lowest] < result.smoothed_losses[0]

    plot = plot_range_test(result, tmp_path / "curve.png", "tiny")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = result.to_json()
    assert json.loads(json.dumps(document))["suggestion"] == pytest.approx(result.suggestion)
