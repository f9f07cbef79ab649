"""Optimizers and learning-rate schedules built from recipe sections."""

from __future__ import annotations

import math

import pytest

from dltrain.backend import keras
from dltrain.recipe.schema import OptimizerName, OptimizerSpec, ScheduleName, ScheduleSpec
from dltrain.training.optimizers import make_optimizer, make_schedule


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


def test_clipping_and_weight_decay_reach_keras() -> None:
    spec = OptimizerSpec(name="adamw", clipnorm=1.0, weight_decay=0.01)
    optimizer = make_optimizer(spec, 0.1)
    assert optimizer.clipnorm == 1.0
    assert make_optimizer(OptimizerSpec(clipvalue=0.5), 0.1).clipvalue == 0.5
    assert make_optimizer(OptimizerSpec(global_clipnorm=2.0), 0.1).global_clipnorm == 2.0
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert make_optimizer(OptimizerSpec(name="rmsprop", momentum=0.5), 0.1).momentum == 0.5


@pytest.mark.parametrize("pair", [("clipnorm", "global_clipnorm"), ("clipnorm", "clipvalue")])
def test_one_clipping_mode_at_a_time(pair: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="only one of"):
        OptimizerSpec.model_validate(dict.fromkeys(pair, 1.0))


def lr_at(schedule: object, step: int) -> float:
    if isinstance(schedule, float):
        return schedule
    return float(schedule(step))  # type: ignore[operator]


STEPS = 10  # steps per epoch


@pytest.mark.parametrize(
    ("spec", "epoch", "expected"),
    [
        (ScheduleSpec(name=ScheduleName.CONSTANT), 7, 0.1),
        (ScheduleSpec(name=ScheduleName.EXPONENTIAL, gamma=0.5), 2, 0.1 * 0.25),
        (ScheduleSpec(name=ScheduleName.EXPONENTIAL, gamma=0.5), 0.5, 0.1 * 0.5**0.5),
        (ScheduleSpec(name=ScheduleName.STEP, gamma=0.1, step_epochs=3), 2.9, 0.1),
        (ScheduleSpec(name=ScheduleName.STEP, gamma=0.1, step_epochs=3), 3, 0.01),
        (ScheduleSpec(name=ScheduleName.STEP, gamma=0.1, step_epochs=3), 6, 0.001),
        (ScheduleSpec(name=ScheduleName.COSINE), 0, 0.1),
        (ScheduleSpec(name=ScheduleName.COSINE), 5, 0.05),
        (ScheduleSpec(name=ScheduleName.COSINE), 10, 0.0),
        (ScheduleSpec(name=ScheduleName.COSINE, min_learning_rate=0.01), 10, 0.01),
    ],
)
def test_schedules_follow_their_formulas(spec: ScheduleSpec, epoch: float, expected: float) -> None:
    schedule = make_schedule(spec, 0.1, epochs=10, steps_per_epoch=STEPS)
    assert lr_at(schedule, round(epoch * STEPS)) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_cosine_matches_the_standard_formula_everywhere() -> None:
    lr0, lr_min, total = 0.1, 0.001, 100
    schedule = make_schedule(ScheduleSpec(name="cosine", min_learning_rate=lr_min), lr0, 10, 10)
    for step in range(0, total + 1, 7):
        expected = lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * step / total))
        assert lr_at(schedule, step) == pytest.approx(expected, rel=1e-5)
