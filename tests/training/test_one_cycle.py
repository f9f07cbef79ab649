"""The one-cycle schedule and its momentum cycling, step by step on a one-weight model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.backend import keras
from dltrain.recipe.optimization import ScheduleSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.tasks import Task
from dltrain.training.compile import compile_parts
from dltrain.training.one_cycle import MomentumCycle, OneCycle, find_one_cycle
from tests.manifests import manifest_of

STEPS = 5  # batches per epoch
EPOCHS = 4

# a regression dataset's manifest: compile_parts reads its target
NUMBERS = manifest_of(
    "regression", target={"columns": ["y"], "mean": [0.0], "std": [1.0], "min": [0.0], "max": [1.0]}
)


def one_cycle_spec(optimizer: str, **schedule: Any) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "epochs": EPOCHS,
            "optimizer": {"name": optimizer, "learning_rate": 0.1},
            "lr_schedule": {"name": "one_cycle", "pct_start": 0.3, **schedule},
        }
    )


def test_the_rate_rises_to_the_peak_then_falls_far_below_the_start() -> None:
    schedule = OneCycle(0.1, total_steps=100, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    rates = [float(schedule(step)) for step in range(101)]
    assert rates[0] == pytest.approx(0.1 / 25)
    assert max(rates) == pytest.approx(0.1) and int(np.argmax(rates)) == 30
    assert rates[100] == pytest.approx(0.1 / 1e4, rel=1e-3)
    assert all(b >= a for a, b in zip(rates[:30], rates[1:31], strict=True))
    assert all(b <= a for a, b in zip(rates[30:], rates[31:], strict=False))
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert [float(again(s)) for s in (0, 30, 77)] == pytest.approx([rates[0], rates[30], rates[77]])
    # the momentum goes the other way: high at both ends, low at the peak
    momenta = [schedule.momentum(step, 0.95, 0.85) for step in range(101)]
    assert (momenta[0], momenta[30], momenta[100]) == pytest.approx((0.95, 0.85, 0.95))


def fit_one_weight(spec: TrainSpec) -> tuple[keras.Model, Any, list[float]]:
    """Fit w on loss = mean(x·w) with x = 1: every step's gradient is exactly 1."""
    parts = compile_parts(spec, Task.REGRESSION, NUMBERS, steps_per_epoch=STEPS)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(parts.optimizer, loss=lambda y, p: keras.ops.mean(p))
    after: list[float] = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: after.append(float(model.weights[0].numpy()[0, 0]))
    )
    ones = np.ones((STEPS, 1), "float32")
    model.fit(ones, ones, batch_size=1, epochs=EPOCHS, verbose=0, shuffle=False,
              callbacks=[*parts.callbacks, record])  # fmt: skip
    cycle = find_one_cycle(parts.optimizer._learning_rate)
    return model, cycle, after


def test_sgd_momentum_cycles_inside_the_compiled_step() -> None:
    spec = one_cycle_spec("momentum")
    model, cycle, after = fit_one_weight(spec)
    high, low = 0.95, 0.85
    w, velocity, expected, momenta = 0.0, 0.0, [], []
    for step in range(EPOCHS * STEPS):  # Keras's SGD: v = m·v − lr·g; w = w + v
        momentum = cycle.momentum(step, high, low)
        velocity = momentum * velocity - float(cycle(step)) * 1.0
        w += velocity
        expected.append(w)
        momenta.append(momentum)
    assert min(momenta) < high - 0.05  # it moved
    assert after == pytest.approx(expected, rel=1e-5)
    # the saved optimizer's momentum is a number again
    assert model.optimizer.get_config()["momentum"] == pytest.approx(high)


def test_adam_beta_1_cycles() -> None:
    spec = one_cycle_spec("adam", momentum_range=[0.9, 0.5])
    model, cycle, _ = fit_one_weight(spec)
    m = 0.0
    for step in range(EPOCHS * STEPS):  # Adam's first moment: m += (g − m)(1 − beta_1)
        m += (1.0 - m) * (1 - cycle.momentum(step, 0.9, 0.5))
    first_moment = float(model.optimizer._momentums[0].numpy()[0, 0])
    assert first_moment == pytest.approx(m, rel=1e-5)
    fixed = 0.0
    for _ in range(EPOCHS * STEPS):
        fixed += (1.0 - fixed) * (1 - 0.9)
    assert abs(first_moment - fixed) > 1e-3  # a frozen beta_1 would have given this


def test_optimizers_without_momentum_are_not_cycled() -> None:
    for name in ("sgd", "rmsprop", "adagrad"):
        parts = compile_parts(one_cycle_spec(name), Task.REGRESSION, NUMBERS, STEPS)
        assert not any(isinstance(c, MomentumCycle) for c in parts.callbacks), name
    parts = compile_parts(
        one_cycle_spec("adam", momentum_range=None), Task.REGRESSION, NUMBERS, STEPS
    )
    assert not any(isinstance(c, MomentumCycle) for c in parts.callbacks)


def test_settings_one_cycle_refuses() -> None:
    with pytest.raises(ValidationError, match="warmup_epochs"):
        ScheduleSpec(name="one_cycle", warmup_epochs=1)
    with pytest.raises(ValidationError, match="momentum_range"):
        TrainSpec.model_validate(
            {
                "optimizer": {"name": "momentum", "momentum": 0.9},
                "lr_schedule": {"name": "one_cycle"},
            }
        )
    with pytest.raises(ValidationError):
        ScheduleSpec(name="one_cycle", momentum_range=[0.95])


def test_a_later_phase_cycles_the_momentum_with_its_own_cycle() -> None:
    # the transfer family's fine-tuning compiles a new optimizer with a cycle of its own, while
    # the callback made for the frozen phase goes on
    frozen, fine = OneCycle(0.1, total_steps=10), OneCycle(0.01, total_steps=40)
    callback = MomentumCycle(frozen, "beta_1", high=0.95, low=0.85)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(fine), loss="mse")
    callback.set_model(model)
    callback.on_train_begin()
    assert callback.schedule is fine
