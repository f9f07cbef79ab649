"""Schedules paced by the time budget (``lr_schedule.pace: time_budget``): the rate runs at the
further of the steps taken and the share of the budget spent, so it ends with the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.recipe.choices import ScheduleName
from dltrain.recipe.optimization import ScheduleSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.tasks import Task
from dltrain.training.callbacks import EpochStats
from dltrain.training.checkpoints import CheckpointState
from dltrain.training.compile import compile_parts
from dltrain.training.dryrun import planned_rates
from dltrain.training.epoch_time import EpochTime, StepTimes
from dltrain.training.one_cycle import MomentumCycle
from dltrain.training.schedules import PaceByTime, TimePaced, make_schedule
from tests.manifests import manifest_of

LR0 = 0.1
EPOCHS = 10
STEPS = 4
NUMBERS = manifest_of(
    "regression", target={"columns": ["y"], "mean": [0.0], "std": [1.0], "min": [0.0], "max": [1.0]}
)
# every schedule, warmed up where it can be (one_cycle rises by itself; constant needs a warmup
# to have anything to pace)
PACED = [
    ScheduleSpec(name=name, warmup_epochs=0 if name == ScheduleName.ONE_CYCLE else 1)
    for name in ScheduleName
]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rate(schedule: Any, step: float) -> float:
    return float(schedule(step))


def paced_spec(schedule: str, budget: str, optimizer: str = "sgd") -> TrainSpec:
    """A run of EPOCHS epochs whose ``schedule`` is paced by a ``budget``."""
    return TrainSpec.model_validate(
        {
            "epochs": EPOCHS,
            "time_budget": budget,
            "optimizer": {"name": optimizer, "learning_rate": LR0},
            "lr_schedule": {"name": schedule, "pace": "time_budget"},
        }
    )


@pytest.mark.parametrize("spec", PACED, ids=lambda s: s.name.value)
def test_the_rate_runs_at_the_further_of_steps_and_time(spec: ScheduleSpec) -> None:
    plain = make_schedule(spec, LR0, EPOCHS, STEPS)
    paced = make_schedule(spec.model_copy(update={"pace": "time_budget"}), LR0, EPOCHS, STEPS)
    assert isinstance(paced, TimePaced) and paced.total_steps == EPOCHS * STEPS
    for progress in (0.0, 0.3, 0.75, 1.0):
        paced.set_progress(progress)
        for step in (0, 3, 11, 25, 39):
            ahead = max(step, progress * EPOCHS * STEPS)
            assert rate(paced, step) == pytest.approx(rate(plain, ahead), rel=1e-5, abs=1e-9)


def test_pace_follows_the_budget_spent_and_a_resume_spreads_the_rest() -> None:
    spec = paced_spec("cosine", "100s")
    parts = compile_parts(spec, Task.REGRESSION, NUMBERS, steps_per_epoch=STEPS)
    (pacer,) = [c for c in parts.callbacks if isinstance(c, PaceByTime)]
    clock = pacer.clock = Clock()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(parts.optimizer, "mse")
    pacer.set_model(model)
    pacer.on_train_begin()
    seen = []
    for seconds in (0, 25, 50, 99, 100, 250):
        clock.now = 100.0 + seconds
        pacer.on_train_batch_begin(0)
        seen.append(pacer.progress())
    assert seen == pytest.approx([0.0, 0.25, 0.5, 0.99, 1.0, 1.0])
    # At step 0 with the budget spent, the cosine is at its end: the rate is 0.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)

    # A resumed run that had spent 60% goes on from there: half its own budget spends half the
    # remaining 40%.
    pacer.resume_from(0.6)
    pacer.on_train_begin()
    clock.now += 50
    pacer.on_train_batch_begin(0)
    assert pacer.progress() == pytest.approx(0.8)
    # a move under a 10,000th of the budget is not worth a variable write; a larger one is
    written = pacer.schedule
    assert written is not None
    clock.now += 0.01
    pacer.on_train_batch_begin(0)
    assert float(written.progress) == pytest.approx(0.8) == pacer.progress()
    clock.now += 1.0
    pacer.on_train_batch_begin(0)
    assert float(written.progress) == pytest.approx(0.8 + 0.4 * 1.01 / 100)


def test_fit_under_a_slow_clock_ends_the_decay_with_the_budget(tmp_path: Path) -> None:
    """Epochs twice as slow as planned: the paced cosine still reaches its end when the budget
    runs out, where the cosine counted in epochs would be half-way."""
    spec = paced_spec("cosine", "20s")
    parts = compile_parts(spec, Task.REGRESSION, NUMBERS, steps_per_epoch=STEPS)
    (pacer,) = [c for c in parts.callbacks if isinstance(c, PaceByTime)]
    clock = pacer.clock = Clock()

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            clock.now += 1.0  # 4 s an epoch: the 20 s budget holds 5 of the 10 epochs

    x = np.linspace(-1, 1, 32, dtype="float32")[:, None]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(parts.optimizer, "mse")
    history = model.fit(
        x, 2 * x, batch_size=8, epochs=5, verbose=0, callbacks=[EpochStats(), pacer, Tick()]
    )
    logged = history.history["learning_rate"]
    plain = make_schedule(ScheduleSpec(name="cosine"), LR0, EPOCHS, STEPS)
    # each epoch's last step ran at the time share of the budget: steps 3, 7, … of 40 ran at
    # 3/20, 7/20, … of the budget, twice as far along as the steps
    expected = [rate(plain, 2 * (STEPS * e + 3)) for e in range(5)]
    assert logged == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert logged[-1] < 0.01 * LR0 < rate(plain, 5 * STEPS - 1) / 10


def test_one_cycle_momentum_keeps_pace_with_its_rate() -> None:
    spec = paced_spec("one_cycle", "100s", optimizer="adam")
    parts = compile_parts(spec, Task.REGRESSION, NUMBERS, steps_per_epoch=STEPS)
    (cycle,) = [c for c in parts.callbacks if isinstance(c, MomentumCycle)]
    assert cycle.pace is not None
    cycle.pace.set_progress(0.25)  # the rate's peak: a quarter of the way
    peak = cycle.schedule.momentum(cycle.pace.step_at(0), 0.95, 0.85)
    assert peak == pytest.approx(0.85)


def test_the_dry_run_plans_the_rate_by_the_timed_epoch() -> None:
    spec = paced_spec("cosine", "20s")
    # 4 steps of 1 s: 4 s an epoch, so the 20 s budget holds 5 of the 10 epochs
    timing = EpochTime(STEPS, 0, 2, StepTimes((1.0,) * 5), None, EPOCHS, budget_seconds=20.0)
    assert timing.epochs_in_budget == 5
    plain = make_schedule(ScheduleSpec(name="cosine"), LR0, EPOCHS, STEPS)
    planned = dict(planned_rates(spec, STEPS, timing))
    for epoch in (0, 1, 3, 5, 8):
        share = min(1.0, epoch / 5)  # of the budget, at the epoch's start
        expected = rate(plain, max(epoch * STEPS, share * EPOCHS * STEPS))
        assert planned[epoch] == pytest.approx(expected, rel=1e-5, abs=1e-9), epoch
    # untimed, the plan is the epochs' own
    untimed = dict(planned_rates(spec, STEPS, None))
    assert untimed[3] == pytest.approx(rate(plain, 3 * STEPS), rel=1e-5)


def test_a_paced_schedule_saves_and_loads_with_its_progress(tmp_path: Path) -> None:
    paced = make_schedule(
        ScheduleSpec(name="cosine", warmup_epochs=1, pace="time_budget"), LR0, EPOCHS, STEPS
    )
    assert isinstance(paced, TimePaced)
    paced.set_progress(0.5)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(paced), "mse")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, TimePaced) and schedule.progress_now() == pytest.approx(0.5)
    assert rate(schedule, 0) == pytest.approx(rate(paced, 0))


def test_the_checkpoint_state_keeps_the_progress() -> None:
    written = {
        "epoch": 2,
        "checkpoint": "epoch-0002.keras",
        "monitor": "val_loss",
        "best_value": 1.0,
        "best_epoch": 2,
        "early_stopping": None,
    }
    state = CheckpointState.from_json({**written, "schedule_progress": 0.4}, Path("s.json"))
    assert state.schedule_progress == 0.4
    assert state.to_json() == {**written, "schedule_progress": 0.4}
    assert CheckpointState.from_json(written, Path("s.json")).schedule_progress is None


def test_pace_needs_a_budget_and_a_schedule() -> None:
    with pytest.raises(ValidationError, match="no `train.time_budget`"):
        TrainSpec.model_validate({"lr_schedule": {"name": "cosine", "pace": "time_budget"}})
    with pytest.raises(ValidationError, match="no schedule to pace"):
        TrainSpec.model_validate({"time_budget": "1m", "lr_schedule": {"pace": "time_budget"}})
    with pytest.raises(ValidationError, match="identical reruns"):
        TrainSpec.model_validate(
            {
                "time_budget": "1m",
                "deterministic": True,
                "lr_schedule": {"name": "cosine", "pace": "time_budget"},
            }
        )
    # a warmup alone is something to pace
    TrainSpec.model_validate(
        {"time_budget": "1m", "lr_schedule": {"pace": "time_budget", "warmup_epochs": 1}}
    )


def test_transfer_fine_tuning_refuses_one_pace_for_two_phases() -> None:
    from dltrain.models.transfer import TransferTraining
    from dltrain.recipe.models import TransferSpec

    train = TrainSpec.model_validate(
        {"epochs": 4, "time_budget": "1m", "lr_schedule": {"name": "cosine", "pace": "time_budget"}}
    )
    hooks = TransferTraining(
        TransferSpec.model_validate({"family": "transfer", "freeze_epochs": 2})
    )
    with pytest.raises(RecipeError, match="two phases"):
        hooks.phases(train, 0)
