"""Our multi-worker loop in one process (the default strategy): steps per execution, stopping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dltrain.backend import keras, tf
from dltrain.training.multiworker import fit


class Recorder(keras.callbacks.Callback):
    """Records the batch indices callbacks see; wishes to stop after ``stop_after``."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.stop_after = stop_after
        self.ends: list[int] = []
        self.test_ends: list[int] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.ends.append(batch)
        if self.stop_after is not None and batch >= self.stop_after:
            self.model.stop_training = True

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        self.test_ends.append(batch)


def batches(count: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count * 8, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5], dtype="float32") > 0).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def train(steps_per_execution: int, *, epochs: int = 2, stop_after: int | None = None) -> Any:
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    recorder = Recorder(stop_after)
    history = fit(
        model,
        tf.distribute.get_strategy(),
        batches(10),
        validation_data=batches(3),
        epochs=epochs,
        callbacks=[recorder],
        steps_per_execution=steps_per_execution,
    )
    return model, history.history, recorder


def test_several_steps_per_execution_train_the_same_weights_and_logs() -> None:
    one_model, one_logs, one_calls = train(1)
    four_model, four_logs, four_calls = train(4)
    for one, four in zip(one_model.get_weights(), four_model.get_weights(), strict=True):
        np.testing.assert_array_equal(one, four)
    assert one_logs == four_logs and set(one_logs) >= {"loss", "accuracy", "val_loss"}
    assert one_calls.ends == list(range(10)) * 2
    assert four_calls.ends == [3, 7, 9] * 2  # the last batch of each execution, as fit does
    assert four_calls.test_ends == [2, 2]


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_a_wish_to_stop_stops_after_the_execution_it_was_made_in(steps_per_execution: int) -> None:
    model, logs, calls = train(steps_per_execution, epochs=3, stop_after=5)
    last = 5 if steps_per_execution == 1 else 7  # the execution that ran batch 5 ends at 7
    assert calls.ends[-1] == last
    assert int(model.optimizer.iterations) == last + 1  # no batch ran after the wish
    assert len(logs["loss"]) == 1 and model.stop_training


def test_steps_per_execution_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        train(0)
