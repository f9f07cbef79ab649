"""Averaged weights (EMA, SWA): what is validated, checkpointed, saved and resumed.

Each test trains a tiny MLP on a 300-row table for a few epochs, in-process, deterministic and
unshuffled, so two runs that should agree agree to the last bit.
"""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from dltrain.backend import keras
from dltrain.data.store import open_store
from dltrain.errors import TrainingInterrupted
from dltrain.models.saving import load_model
from dltrain.recipe.load import load_recipe
from dltrain.runs import RunFolder
from dltrain.training.averaging import average_slots, recompute_batch_norm
from dltrain.training.fit import train
from tests.cli.eval_projects import write_houses, write_houses_recipe
from tests.conftest import invoke

EMA = [("train.optimizer.ema.enabled", True), ("train.optimizer.ema.momentum", 0.9)]
SWA = [("train.swa.enabled", True), ("train.swa.start_epoch", 2)]


@pytest.fixture(scope="module")
def houses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared 300-row house-price table and its recipe (3 epochs, no shuffling)."""
    project = tmp_path_factory.mktemp("houses")
    write_houses(project / "houses.csv", 300, seed=4)
    write_houses_recipe(
        project / "houses.yaml",
        optimizer={"learning_rate": 0.05},
        early_stopping={"enabled": False},
    )
    with contextlib.chdir(project):  # prepare writes data/ into the working directory
        code, _, err = invoke("prepare", "--recipe", "houses.yaml")
    assert code == 0, err
    return project


class WeightsAfterEachBatch(keras.callbacks.Callback):
    """The trained weights after every batch, per epoch (training holds them, not averages)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[list[list[np.ndarray]]] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epochs.append([])

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.epochs[-1].append([np.array(v) for v in self.model.trainable_weights])


class InterruptAfter(keras.callbacks.Callback):
    """Ctrl-C once epoch ``epoch`` (from 1) has been checkpointed."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def run(
    project: Path,
    overrides: list[tuple[str, Any]],
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
    resume: Path | None = None,
) -> Path:
    loaded = load_recipe(project / "houses.yaml", overrides)
    console = Console(file=io.StringIO())
    result = train(loaded, project, console, extra_callbacks=callbacks, resume_dir=resume)
    return result.run_dir


def weights(path: Path) -> list[np.ndarray]:
    return [np.array(w) for w in load_model(path, compile=False).trainable_weights]


def ema(steps: list[list[np.ndarray]], momentum: float) -> list[np.ndarray]:
    """Keras's EMA by hand: the first step's weights, then m·avg + (1 − m)·w after each step."""
    average = [w.copy() for w in steps[0]]
    for step in steps[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, step, strict=True)]
    return average


def assert_same(a: list[np.ndarray], b: list[np.ndarray], rtol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6)


def test_ema_saves_validates_and_checkpoints_the_moving_average(houses: Path) -> None:
    seen = WeightsAfterEachBatch()
    run_dir = run(houses, EMA, (seen,))
    files = RunFolder(run_dir)
    steps = [step for epoch in seen.epochs for step in epoch]
    expected = ema(steps, 0.9)
    assert_same(weights(files.model), expected)
    trained = steps[-1]
    assert not np.allclose(trained[0], expected[0])  # the average is not the last weights
    # the last checkpoint holds the average as its weights and the trained ones in its slots
    (checkpoint,) = files.checkpoints.glob("epoch-*.keras")
    assert_same(weights(checkpoint), expected)
    restored = load_model(checkpoint, compile=False)
    restored.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="mse")
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(checkpoint)
    assert_same([np.array(slot) for _, slot in average_slots(restored)], trained)
    # validation scored the averaged model: the last logged val_loss is the saved model's
    dataset = open_store(houses / "data" / "houses")
    x, y = dataset.load_split("validation")
    saved = load_model(files.model, compile=False)
    saved.compile(loss="mse")
    val_loss = saved.evaluate(dataset.manifest.model_inputs(x), y, batch_size=32, verbose=0)
    with files.history.open() as handle:
        logged = float(list(csv.DictReader(handle))[-1]["val_loss"])
    assert logged == pytest.approx(val_loss, rel=1e-5)


# one_cycle: its rate and cycled beta_1 follow the optimizer's step counter, which resumes too
ONE_CYCLE = [("train.lr_schedule.name", "one_cycle"), ("train.lr_schedule.pct_start", 0.5)]


@pytest.mark.parametrize(
    "overrides",
    [EMA, [*SWA, ("train.swa.start_epoch", 1)], [*EMA, *ONE_CYCLE]],
    ids=["ema", "swa", "ema+one_cycle"],
)
def test_a_resumed_run_ends_with_the_uninterrupted_runs_weights(
    houses: Path, overrides: list[tuple[str, Any]]
) -> None:
    whole = run(houses, overrides)
    with pytest.raises(TrainingInterrupted):
        # after epoch 2 the average and the trained weights differ, for SWA too
        run(houses, overrides, (InterruptAfter(2),))
    cut = sorted(p for p in (houses / "runs" / "houses").iterdir() if p != whole)[-1]
    resumed = run(houses, overrides, resume=cut)
    assert resumed == cut
    assert_same(weights(RunFolder(cut).model), weights(RunFolder(whole).model), rtol=1e-6)


def test_swa_saves_the_mean_of_the_epochs_from_its_start(houses: Path) -> None:
    seen = WeightsAfterEachBatch()
    run_dir = run(houses, SWA, (seen,))
    ends = [epoch[-1] for epoch in seen.epochs]  # the weights each epoch ended with
    expected = [(a + b) / 2 for a, b in zip(ends[1], ends[2], strict=True)]
    assert_same(weights(RunFolder(run_dir).model), expected)


def test_batch_norm_statistics_are_recomputed_as_the_mean_over_batches() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=0.9)])
    rng = np.random.default_rng(0)
    batches = [(rng.normal(3.0, 2.0, (16, 2)).astype("float32"), None) for _ in range(4)]
    assert recompute_batch_norm(model, batches) == 4
    layer = model.layers[0]
    means = np.mean([b[0].mean(axis=0) for b in batches], axis=0)
    variances = np.mean([b[0].var(axis=0) for b in batches], axis=0)
    np.testing.assert_allclose(np.array(layer.moving_mean), means, rtol=1e-5)
    np.testing.assert_allclose(np.array(layer.moving_variance), variances, rtol=1e-4)
    assert layer.momentum == 0.9  # put back
    no_bn = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert recompute_batch_norm(no_bn, batches) == 0


def test_early_stopping_keeps_the_best_epochs_average(houses: Path) -> None:
    seen = WeightsAfterEachBatch()
    stopping = [("train.early_stopping.enabled", True), ("train.early_stopping.patience", 5)]
    run_dir = run(houses, [*EMA, *stopping, ("train.epochs", 4)], (seen,))
    files = RunFolder(run_dir)
    with files.history.open() as handle:
        losses = [float(row["val_loss"]) for row in csv.DictReader(handle)]
    best = losses.index(min(losses))  # counted from 0
    steps = [step for epoch in seen.epochs[: best + 1] for step in epoch]
    expected = ema(steps, 0.9)
    assert_same(weights(files.best_checkpoint), expected)
    assert_same(weights(files.model), expected)
