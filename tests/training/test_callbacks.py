"""dltrain's own callbacks: divergence detection and per-epoch statistics."""

from __future__ import annotations

import numpy as np

from dltrain.backend import keras
from dltrain.training.callbacks import DivergenceGuard, EpochStats, format_logs


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    return model


def test_divergence_guard_stops_at_the_first_non_finite_loss() -> None:
    guard = DivergenceGuard()
    guard.set_model(tiny_model())
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(4, {"loss": 1.5})
    assert guard.diverged_at is None and not guard.model.stop_training
    guard.on_train_batch_end(5, {"loss": float("nan")})
    assert guard.diverged_at == (3, 6) and guard.model.stop_training


def test_divergence_guard_in_a_real_fit() -> None:
    x = np.full((64, 2), 1e3, dtype="float32")
    y = np.full((64, 1), 1e3, dtype="float32")
    model = tiny_model()
    guard = DivergenceGuard()
    history = model.fit(x, y, epochs=5, batch_size=8, callbacks=[guard], verbose=0)
    assert guard.diverged_at is not None
    assert len(history.history["loss"]) == guard.diverged_at[0]


def test_epoch_stats_adds_learning_rate_and_seconds() -> None:
    model = tiny_model()
    history = model.fit(
        np.zeros((8, 2)), np.zeros((8, 1)), epochs=2, callbacks=[EpochStats()], verbose=0
    )
    assert history.history["learning_rate"] == [0.5, 0.5]
    assert all(s > 0 for s in history.history["epoch_seconds"])


def test_format_logs() -> None:
    line = format_logs({"loss": 0.12345, "learning_rate": 0.001, "epoch_seconds": 3.0})
    assert line == "loss 0.1235  learning_rate 0.001"
