"""Learning-rate schedules: every one by its formula, with and without warmup and plateau, and
trained on tiny data with the rate logged each epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.backend import keras, tf
from dltrain.errors import RecipeError
from dltrain.recipe.choices import ScheduleName
from dltrain.recipe.optimization import PlateauSpec, ScheduleSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.tasks import Task
from dltrain.training.callbacks import EpochStats
from dltrain.training.compile import compile_parts
from dltrain.training.schedules import (
    LinearWarmup,
    PlateauScaled,
    ReduceOnPlateau,
    make_schedule,
)
from tests.manifests import manifest_of

LR0 = 0.1
EPOCHS = 10
STEPS = 4  # steps per epoch

# a regression dataset's manifest: compile_parts reads its target
NUMBERS = manifest_of(
    "regression", target={"columns": ["y"], "mean": [0.0], "std": [1.0], "min": [0.0], "max": [1.0]}
)


def rate(schedule: Any, step: int) -> float:
    return schedule if isinstance(schedule, float) else float(schedule(step))


def reference(name: str, step: float, total: float, **kw: Any) -> float:
    """The textbook formula of each schedule at optimizer step ``step`` of ``total``."""
    epoch = step / STEPS
    lr_min = kw.get("min_learning_rate", 0.0)
    if name == "constant":
        return LR0
    if name == "exponential":
        return LR0 * kw.get("gamma", 0.5) ** epoch
    if name == "step":
        if "boundaries" in kw:
            return LR0 * kw.get("gamma", 0.5) ** sum(epoch >= b for b in kw["boundaries"])
        return LR0 * kw.get("gamma", 0.5) ** math.floor(epoch / kw.get("step_epochs", 5))
    if name == "cosine":
        return lr_min + 0.5 * (LR0 - lr_min) * (1 + math.cos(math.pi * min(step, total) / total))
    if name == "cosine_restarts":  # SGDR with t_mul=2: cycles of 5, 10, 20 … epochs
        length, start, shrink = 5.0 * STEPS, 0.0, 1.0
        while step >= start + length:
            start, length, shrink = start + length, length * 2, shrink * kw.get("m_mul", 1.0)
        t = (step - start) / length
        # Each restart's height above the floor shrinks; the floor stays.
        return lr_min + shrink * 0.5 * (LR0 - lr_min) * (1 + math.cos(math.pi * t))
    if name == "polynomial":
        power = kw.get("power", 1.0)
        return (LR0 - lr_min) * (1 - min(step, total) / total) ** power + lr_min
    if name == "inverse_time":
        return LR0 / (1 + kw.get("decay_rate", 0.5) * epoch)
    if name == "one_cycle":  # half cosines: LR0/div up to LR0 over pct_start, down to LR0/final
        rise = round(kw.get("pct_start", 0.25) * total)
        start, end = LR0 / kw.get("div_factor", 25.0), LR0 / kw.get("final_div_factor", 1e5)
        if step < rise:
            return LR0 + (start - LR0) * 0.5 * (1 + math.cos(math.pi * step / rise))
        t = min(1.0, (step - rise) / (total - rise))
        return end + (LR0 - end) * 0.5 * (1 + math.cos(math.pi * t))
    raise AssertionError(name)


CASES: list[tuple[str, dict[str, Any]]] = [
    ("constant", {}),
    ("exponential", {"gamma": 0.5}),
    ("step", {"gamma": 0.1, "step_epochs": 3}),
    ("step", {"gamma": 0.5, "boundaries": [2, 4.5, 7]}),
    ("cosine", {}),
    ("cosine", {"min_learning_rate": 0.01}),
    ("cosine_restarts", {}),
    ("cosine_restarts", {"restart_peak_mult": 0.5, "min_learning_rate": 0.001}),
    ("polynomial", {}),
    ("polynomial", {"power": 2.0, "min_learning_rate": 0.01}),
    ("inverse_time", {"decay_rate": 0.5}),
    ("one_cycle", {}),
    ("one_cycle", {"pct_start": 0.4, "div_factor": 10.0, "final_div_factor": 100.0}),
]
# one_cycle rises to its peak itself, and refuses a warmup in front of it
WARMED = [n.value for n in ScheduleName if n != ScheduleName.ONE_CYCLE]


def keyword(kw: dict[str, Any]) -> dict[str, Any]:
    renamed = {"restart_peak_mult": "m_mul"}
    return {renamed.get(k, k): v for k, v in kw.items()}


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_schedule_follows_its_formula(name: str, kw: dict[str, Any]) -> None:
    schedule = make_schedule(ScheduleSpec(name=ScheduleName(name), **kw), LR0, EPOCHS, STEPS)
    total = EPOCHS * STEPS
    for step in range(0, total + 1, 3):
        expected = reference(name, step, total, **keyword(kw))
        assert rate(schedule, step) == pytest.approx(expected, rel=1e-4, abs=1e-7), step


@pytest.mark.parametrize("name", WARMED)
@pytest.mark.parametrize("start_factor", [0.0, 0.2])
def test_warmup_ramps_then_runs_the_schedule_shifted(name: str, start_factor: float) -> None:
    warm = make_schedule(
        ScheduleSpec(name=name, warmup_epochs=2, warmup_start_factor=start_factor),
        LR0,
        EPOCHS,
        STEPS,
    )
    assert isinstance(warm, LinearWarmup)
    warmup = 2 * STEPS
    # The schedule after warmup is the plain schedule over the rest of the run.
    plain = make_schedule(ScheduleSpec(name=name), LR0, EPOCHS - 2, STEPS)
    ramp = [rate(warm, s) for s in range(warmup)]
    expected_ramp = [LR0 * (start_factor + (1 - start_factor) * (s + 1) / warmup) for s in range(8)]
    assert ramp == pytest.approx(expected_ramp, rel=1e-5)
    assert all(b > a for a, b in zip(ramp, ramp[1:], strict=False))
    for step in range(warmup, EPOCHS * STEPS + 1):
        assert rate(warm, step) == pytest.approx(rate(plain, step - warmup), rel=1e-5), step


def test_fractional_warmup_and_warmup_longer_than_the_run() -> None:
    warm = make_schedule(ScheduleSpec(warmup_epochs=0.5), LR0, EPOCHS, STEPS)
    assert isinstance(warm, LinearWarmup) and warm.warmup_steps == 2
    with pytest.raises(RecipeError, match="warmup_epochs"):
        make_schedule(ScheduleSpec(warmup_epochs=10), LR0, EPOCHS, STEPS)


def test_constant_without_extras_stays_a_plain_rate() -> None:
    assert make_schedule(ScheduleSpec(), LR0, EPOCHS, STEPS) == LR0


@pytest.mark.parametrize("name", [n.value for n in ScheduleName])
def test_plateau_scales_any_schedule_and_respects_its_floor(name: str) -> None:
    spec = ScheduleSpec(
        name=name,
        warmup_epochs=1 if name in WARMED else 0,
        reduce_on_plateau=PlateauSpec(enabled=True, min_learning_rate=0.02),
    )
    scaled = make_schedule(spec, LR0, EPOCHS, STEPS)
    assert isinstance(scaled, PlateauScaled)
    inner = scaled.schedule
    for step in (0, 5, 17, 33):
        assert rate(scaled, step) == pytest.approx(rate(inner, step), rel=1e-6)
    scaled.reduce(0.5)
    for step in (0, 5, 17, 33):
        base = rate(inner, step)
        # Halved, but a reduction never pushes below the floor (the schedule itself may).
        expected = max(base * 0.5, min(base, 0.02))
        assert rate(scaled, step) == pytest.approx(expected, rel=1e-6), step


def tiny_regression(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5], dtype="float32"))[:, None]
    return x, y


def plateau_always(**kw: Any) -> dict[str, Any]:
    # min_delta larger than any change: every epoch after the first counts as a plateau.
    return {"enabled": True, "monitor": "loss", "patience": 0, "min_delta": 1e9, **kw}


def train_spec(name: str, extras: str, epochs: int = 4) -> TrainSpec:
    lr_schedule: dict[str, Any] = {"name": name}
    if "warmup" in extras:
        lr_schedule["warmup_epochs"] = 1
    if "plateau" in extras:
        lr_schedule["reduce_on_plateau"] = plateau_always(factor=0.5)
    optimizer = {"name": "sgd", "learning_rate": LR0}
    return TrainSpec.model_validate(
        {"epochs": epochs, "optimizer": optimizer, "lr_schedule": lr_schedule}
    )


def expected_rates(spec: TrainSpec, steps: int) -> list[float]:
    """The rate of every step: the schedule (with its warmup) × the plateau reductions so far."""
    schedule = make_schedule(
        spec.lr_schedule.model_copy(update={"reduce_on_plateau": PlateauSpec()}),
        LR0,
        spec.epochs,
        steps,
    )
    plateau = spec.lr_schedule.reduce_on_plateau.enabled
    # The first epoch sets the best value; each later epoch is a plateau, reduced at its end.
    return [
        rate(schedule, step) * (0.5 ** max(0, step // steps - 1) if plateau else 1.0)
        for step in range(spec.epochs * steps)
    ]


@pytest.mark.parametrize(
    ("name", "extras"),
    [
        (name.value, extras)
        for extras in ("plain", "warmup", "plateau", "warmup+plateau")
        for name in ScheduleName
        if "warmup" not in extras or name.value in WARMED
    ],
)
def test_each_schedule_drives_the_updates(name: str, extras: str) -> None:
    """Plain SGD moves a weight by rate × gradient, so each step's applied rate can be read."""
    keras.utils.set_random_seed(0)
    steps = 2
    spec = train_spec(name, extras)
    parts = compile_parts(spec, Task.REGRESSION, NUMBERS, steps_per_epoch=steps)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(parts.optimizer, parts.loss)
    for callback in parts.callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    x, y = tiny_regression()
    kernel = model.trainable_variables[0]
    applied = []
    for epoch in range(spec.epochs):
        losses = []
        for batch in np.array_split(np.arange(len(x)), steps):
            with tf.GradientTape() as tape:
                loss = parts.loss(y[batch], model(x[batch]))
            (gradient,) = tape.gradient(loss, [kernel])
            before = kernel.numpy().copy()
            parts.optimizer.apply([gradient], [kernel])
            moved = (before - kernel.numpy()) / gradient.numpy()
            applied.append(float(np.median(moved)))
            losses.append(float(loss))
        for callback in parts.callbacks:
            callback.on_epoch_end(epoch, {"loss": float(np.mean(losses))})
    assert applied == pytest.approx(expected_rates(spec, steps), rel=2e-3, abs=1e-7)


def test_plateau_with_a_schedule_saves_and_loads(tmp_path: Path) -> None:
    spec = TrainSpec.model_validate(
        {
            "epochs": 3,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "lr_schedule": {
                "name": "cosine",
                "min_learning_rate": 0.001,
                "warmup_epochs": 1,
                "reduce_on_plateau": plateau_always(factor=0.25),
            },
        }
    )
    keras.utils.set_random_seed(0)
    x, y = tiny_regression()
    parts = compile_parts(spec, Task.REGRESSION, NUMBERS, steps_per_epoch=STEPS)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(parts.optimizer, parts.loss)  # compiled: the real train step
    history = model.fit(
        x, y, batch_size=8, epochs=3, callbacks=[EpochStats(), *parts.callbacks], verbose=0
    )
    logged = history.history["learning_rate"]
    # EpochStats reads each epoch's last rate before the plateau callback lowers it.
    cosine = make_schedule(
        ScheduleSpec(name="cosine", min_learning_rate=0.001, warmup_epochs=1), 0.01, 3, STEPS
    )
    expected = [rate(cosine, STEPS * (e + 1)) * 0.25 ** max(0, e - 1) for e in range(3)]
    assert logged == pytest.approx(expected, rel=1e-5)
    assert [epoch for epoch, _ in parts.callbacks[0].reductions] == [2, 3]
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, PlateauScaled) and isinstance(schedule.schedule, LinearWarmup)
    assert float(keras.ops.convert_to_numpy(schedule.factor)) == pytest.approx(0.25**2)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(
        float(model.optimizer.learning_rate)
    )
    assert logged[-1] > float(model.optimizer.learning_rate)  # the last reduction took effect
    x, y = tiny_regression(1)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)  # and training continues from it


def drive(callback: ReduceOnPlateau, values: list[float], key: str = "val_loss") -> list[float]:
    """Feed the callback one monitored value per epoch; return the rate after each epoch."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    constant = keras.optimizers.schedules.ExponentialDecay(1.0, 1000, 1.0)
    schedule = PlateauScaled(constant, min_learning_rate=callback.spec.min_learning_rate)
    model.compile(keras.optimizers.SGD(schedule), "mse")
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {key: value})
        rates.append(float(model.optimizer.learning_rate))
    return rates


def test_reduce_on_plateau_patience_cooldown_and_floor() -> None:
    spec = PlateauSpec(enabled=True, factor=0.5, patience=2, cooldown=1, min_learning_rate=0.2)
    rates = drive(ReduceOnPlateau(spec), [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    # Two epochs without improvement → halve; one cooldown epoch; two more → halve; floor 0.2.
    assert rates == pytest.approx([1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2])


def test_reduce_on_plateau_mode_follows_the_metric() -> None:
    spec = PlateauSpec(enabled=True, monitor="val_accuracy", factor=0.5, patience=1)
    rising = drive(ReduceOnPlateau(spec), [0.5, 0.6, 0.7], key="val_accuracy")
    assert rising == [1.0, 1.0, 1.0]  # accuracy going up is improvement: no reduction
    falling = drive(ReduceOnPlateau(spec), [0.7, 0.6, 0.5], key="val_accuracy")
    assert falling == pytest.approx([1.0, 0.5, 0.25])
    min_delta = PlateauSpec(enabled=True, factor=0.5, patience=1, min_delta=0.1)
    assert drive(ReduceOnPlateau(min_delta), [1.0, 0.95]) == pytest.approx([1.0, 0.5])


def test_keras_reduce_lr_on_plateau_cannot_do_this() -> None:
    """Why ReduceOnPlateau exists: Keras's own refuses an optimizer holding a schedule."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 10)), "mse")
    keras_callback = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0)
    keras_callback.set_model(model)
    keras_callback.on_train_begin()
    keras_callback.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(TypeError):
        keras_callback.on_epoch_end(1, {"loss": 1.0})


def test_unknown_plateau_monitor_is_a_recipe_error() -> None:
    spec = TrainSpec.model_validate(
        {"lr_schedule": {"reduce_on_plateau": {"enabled": True, "monitor": "val_acc"}}}
    )
    manifest = manifest_of("multiclass", target={"classes": ["a", "b", "c"]})
    with pytest.raises(RecipeError, match="val_accuracy"):
        compile_parts(spec, Task.MULTICLASS, manifest, steps_per_epoch=STEPS)


def test_schedule_section_checks() -> None:
    with pytest.raises(ValidationError, match="increasing"):
        ScheduleSpec(name="step", boundaries=[5, 3])
    with pytest.raises(ValidationError, match="not both"):
        ScheduleSpec(name="step", boundaries=[3], step_epochs=2)
    with pytest.raises(ValidationError):
        ScheduleSpec(warmup_start_factor=1.0)
