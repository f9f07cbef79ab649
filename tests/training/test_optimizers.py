"""Optimizers built from recipe sections, each trained on tiny data; clipping, weight decay and
gradient accumulation checked by what they do to a step."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.backend import keras, tf
from dltrain.recipe.choices import OptimizerName
from dltrain.recipe.optimization import OptimizerSpec
from dltrain.training.optimizers import make_optimizer


@pytest.mark.parametrize(
    ("name", "cls", "momentum", "nesterov"),
    [
        ("sgd", keras.optimizers.SGD, 0.0, False),
        ("momentum", keras.optimizers.SGD, 0.9, False),
        ("nesterov", keras.optimizers.SGD, 0.9, True),
        ("adagrad", keras.optimizers.Adagrad, None, None),
        ("rmsprop", keras.optimizers.RMSprop, 0.0, None),
        ("adam", keras.optimizers.Adam, None, None),
        ("adamw", keras.optimizers.AdamW, None, None),
        ("nadam", keras.optimizers.Nadam, None, None),
        ("adamax", keras.optimizers.Adamax, None, None),
    ],
)
def test_each_optimizer_name(
    name: str, cls: type, momentum: float | None, nesterov: bool | None
) -> None:
    optimizer = make_optimizer(OptimizerSpec(name=OptimizerName(name), learning_rate=0.05), 0.05)
    assert type(optimizer) is cls
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == pytest.approx(momentum)
    if nesterov is not None:
        assert optimizer.nesterov is nesterov


def regression_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.5, -2.0, 0.5, 1.0], dtype="float32") + 0.3)[:, None]
    return x, y


def mse(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(model(x)) - y) ** 2))


@pytest.mark.parametrize("name", [n.value for n in OptimizerName])
def test_each_optimizer_trains_on_tiny_data(name: str) -> None:
    keras.utils.set_random_seed(0)
    x, y = regression_problem()
    spec = OptimizerSpec(name=name, learning_rate=0.05)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = make_optimizer(spec, spec.learning_rate)
    loss = keras.losses.MeanSquaredError()
    before = mse(model, x, y)
    for batch in np.array_split(np.arange(len(x)), 4) * 5:  # 5 epochs of 4 batches
        with tf.GradientTape() as tape:
            value = loss(y[batch], model(x[batch]))
        optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
    after = mse(model, x, y)
    assert after < 0.7 * before, (before, after)


def one_sgd_step(spec: OptimizerSpec, gradient: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Apply one gradient to a variable holding ``start``; return the variable's new value."""
    variable = keras.Variable(start.astype("float32"))
    optimizer = make_optimizer(spec, spec.learning_rate)
    optimizer.apply([tf.constant(gradient, dtype="float32")], [variable])
    return np.asarray(variable.numpy())


def test_clipping_by_value_norm_and_global_norm() -> None:
    gradient = np.array([3.0, -4.0, 0.5], dtype="float32")  # norm ≈ 5.02
    start = np.zeros(3, dtype="float32")
    clipped = one_sgd_step(
        OptimizerSpec(name="sgd", learning_rate=1.0, clipvalue=1.0), gradient, start
    )
    assert clipped == pytest.approx(-np.clip(gradient, -1, 1))
    by_norm = one_sgd_step(
        OptimizerSpec(name="sgd", learning_rate=1.0, clipnorm=1.0), gradient, start
    )
    assert np.linalg.norm(by_norm) == pytest.approx(1.0, rel=1e-5)
    assert by_norm == pytest.approx(-gradient / np.linalg.norm(gradient), rel=1e-5)
    spec = OptimizerSpec(name="sgd", learning_rate=1.0, global_clipnorm=2.0)
    assert np.linalg.norm(one_sgd_step(spec, gradient, start)) == pytest.approx(2.0, rel=1e-5)
    untouched = one_sgd_step(
        OptimizerSpec(name="sgd", learning_rate=1.0, clipnorm=10.0), gradient, start
    )
    assert untouched == pytest.approx(-gradient)


def test_weight_decay_shrinks_weights_with_no_gradient() -> None:
    start = np.array([1.0, -2.0], dtype="float32")
    spec = OptimizerSpec(name="sgd", learning_rate=0.1, weight_decay=0.5)
    # Decoupled decay: w ← w − lr · wd · w, whatever the gradient (here zero).
    assert one_sgd_step(spec, np.zeros(2), start) == pytest.approx(start * (1 - 0.1 * 0.5))
    assert make_optimizer(OptimizerSpec(name="adamw"), 0.1).weight_decay == pytest.approx(0.004)


def test_gradient_accumulation_updates_every_nth_batch_with_the_mean() -> None:
    spec = OptimizerSpec(name="sgd", learning_rate=1.0, gradient_accumulation_steps=2)
    variable = keras.Variable(np.zeros(2, dtype="float32"))
    optimizer = make_optimizer(spec, spec.learning_rate)
    optimizer.apply([tf.constant([1.0, 2.0])], [variable])
    assert variable.numpy() == pytest.approx([0.0, 0.0])  # the first batch only accumulates
    optimizer.apply([tf.constant([3.0, 0.0])], [variable])
    assert variable.numpy() == pytest.approx([-2.0, -1.0])  # then one step with the mean
    # 1 means off: Keras refuses 1, so it is not passed on.
    assert (
        make_optimizer(
            OptimizerSpec(gradient_accumulation_steps=1), 0.1
        ).gradient_accumulation_steps
        is None
    )


def test_gradient_accumulation_in_fit() -> None:
    x, y = regression_problem()
    spec = OptimizerSpec(name="adam", learning_rate=0.05, gradient_accumulation_steps=4)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(make_optimizer(spec, spec.learning_rate), "mse", run_eagerly=True)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 16 batches → 4 updates
    assert int(model.optimizer.iterations) == 4


def test_rmsprop_and_sgd_take_a_momentum() -> None:
    assert make_optimizer(OptimizerSpec(name="rmsprop", momentum=0.5), 0.1).momentum == 0.5
    assert make_optimizer(OptimizerSpec(name="sgd", momentum=0.5), 0.1).momentum == 0.5


@pytest.mark.parametrize("pair", [("clipnorm", "global_clipnorm"), ("clipnorm", "clipvalue")])
def test_one_clipping_mode_at_a_time(pair: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="only one of"):
        OptimizerSpec.model_validate(dict.fromkeys(pair, 1.0))


@pytest.mark.parametrize("name", ["adam", "adagrad", "adamw", "nadam", "adamax"])
def test_momentum_on_an_optimizer_without_one_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="no momentum setting"):
        OptimizerSpec(name=name, momentum=0.9)
