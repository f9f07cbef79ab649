"""One training run: prepared data + recipe → a self-describing run folder."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from dltrain import __version__
from dltrain.backend import GPUS, keras, tf
from dltrain.data.pipeline import make_dataset
from dltrain.data.prepare import data_spec_digest
from dltrain.data.store import PreparedDataset, open_store
from dltrain.errors import DataError, RecipeError, TrainingFailed
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe import LoadedRecipe
from dltrain.runs import (
    HISTORY_FILE,
    MODEL_FILE,
    RECIPE_FILE,
    RUN_INFO_FILE,
    atomic_path,
    data_dir,
    new_run_dir,
    write_json_atomic,
    write_text_atomic,
)
from dltrain.tasks import Task
from dltrain.training.callbacks import DivergenceGuard, EpochStats, ProgressDisplay
from dltrain.training.losses import default_loss, logged_names, training_metrics
from dltrain.training.optimizers import make_optimizer, make_schedule


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_run: int
    monitor: str | None
    best_epoch: int | None  # 1-based epoch whose weights the saved model holds
    best_value: float | None
    final_logs: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def open_prepared(loaded: LoadedRecipe, workdir: Path) -> PreparedDataset:
    """The recipe's prepared dataset, refusing one prepared from a different data section.

    Raises:
        DataError: none prepared, or prepared with other settings.
    """
    recipe = loaded.recipe
    dataset = open_store(data_dir(workdir, recipe.name))
    if dataset.manifest.get("data_spec_digest") != data_spec_digest(recipe.data, recipe.seed):
        raise DataError(
            f"The prepared dataset {dataset.folder} was made with a different data section or "
            f"seed than recipe {loaded.path} now has. Training on it would not be what the recipe "
            f"says; run `dltrain prepare` with the same recipe and flags first."
        )
    return dataset


def environment(seed: int) -> dict[str, Any]:
    """Versions, seed and device, so a run says how to reproduce it."""
    devices = [
        tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in GPUS
    ]
    return {
        "seed": seed,
        "device": f"GPU ({', '.join(devices)})"
        if devices
        else f"CPU ({platform.processor() or platform.machine()})",
        "versions": {
            "dltrain": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def train(
    loaded: LoadedRecipe,
    workdir: Path,
    console: Console,
    *,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train the recipe's model on its prepared dataset into a new run folder.

    The resolved recipe and the environment are written before training starts; the model is
    written atomically at the end, so a run folder with ``model.keras`` is a finished run.

    Args:
        loaded: the validated recipe.
        workdir: the folder holding data/ and runs/.
        console: where the progress display draws.
        extra_callbacks: run after dltrain's own, so their logs carry ``learning_rate`` and
            ``epoch_seconds`` (a tuner's pruning callback goes here).

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: settings that only show as wrong against the data (e.g. the monitor).
        TrainingFailed: the loss diverged.
    """
    recipe = loaded.recipe
    spec = recipe.train
    dataset = open_prepared(loaded, workdir)
    task = Task(dataset.manifest["task"])
    monitor = spec.early_stopping.monitor
    known = logged_names(task)
    if spec.early_stopping.enabled and monitor not in known:
        raise RecipeError(
            f"`train.early_stopping.monitor` is {monitor!r}, which training does not log. "
            f"Expected one of {', '.join(known)}."
        )

    run_dir = new_run_dir(workdir, recipe.name)
    write_text_atomic(run_dir / RECIPE_FILE, loaded.to_yaml())
    info: dict[str, Any] = {
        "recipe": recipe.name,
        "recipe_file": str(loaded.path),
        "status": "running",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "folder": str(dataset.folder),
            "fingerprint": dataset.manifest["source"]["fingerprint"],
        },
        **environment(recipe.seed),
    }
    write_json_atomic(run_dir / RUN_INFO_FILE, info)

    keras.utils.set_random_seed(recipe.seed)
    train_x, train_y = dataset.load_split("train")
    val_x, val_y = dataset.load_split("validation")
    steps_per_epoch = math.ceil(len(train_x) / spec.batch_size)
    train_data = make_dataset(
        train_x, train_y, spec.batch_size, shuffle=spec.shuffle, seed=recipe.seed
    )
    val_data = make_dataset(val_x, val_y, spec.batch_size, shuffle=False, seed=recipe.seed)

    model = build_model(recipe.model, ModelIO(dataset.manifest))
    schedule = make_schedule(
        spec.lr_schedule, spec.optimizer.learning_rate, spec.epochs, steps_per_epoch
    )
    model.compile(
        optimizer=make_optimizer(spec.optimizer, schedule),
        loss=default_loss(task),
        metrics=training_metrics(task),
    )
    summary: list[str] = []
    model.summary(print_fn=lambda line, **_: summary.append(line))
    write_text_atomic(run_dir / "model_summary.txt", "\n".join(summary) + "\n")

    guard = DivergenceGuard()
    callbacks: list[keras.callbacks.Callback] = [
        guard,
        EpochStats(),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE)),
        ProgressDisplay(
            console, epochs=spec.epochs, steps_per_epoch=steps_per_epoch, batch_size=spec.batch_size
        ),
    ]
    callbacks.extend(extra_callbacks)
    stopper = None
    if spec.early_stopping.enabled:
        es = spec.early_stopping
        stopper = keras.callbacks.EarlyStopping(
            monitor=es.monitor,
            mode=es.mode,
            patience=es.patience,
            min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights,
        )
        callbacks.append(stopper)

    started = time.perf_counter()
    try:
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=spec.epochs,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,  # the input pipeline already reshuffles every epoch
        )
    except KeyboardInterrupt:
        write_json_atomic(run_dir / RUN_INFO_FILE, {**info, "status": "interrupted"})
        raise
    seconds = time.perf_counter() - started

    if guard.diverged_at is not None:
        epoch, batch = guard.diverged_at
        write_json_atomic(run_dir / RUN_INFO_FILE, {**info, "status": "diverged"})
        raise TrainingFailed(
            f"Training diverged at epoch {epoch}, batch {batch}: the loss became NaN or infinite. "
            f"No model was saved in {run_dir}. Lower the learning rate (now "
            f"{spec.optimizer.learning_rate}), add gradient clipping (--set "
            f"train.optimizer.clipnorm=1.0), or check the data for extreme values."
        )

    with atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)

    epochs_run = len(history.history.get("loss", []))
    final_logs = {k: float(v[-1]) for k, v in history.history.items() if v}
    best_epoch = best_value = None
    if stopper is not None and stopper.best is not None:
        best_epoch, best_value = stopper.best_epoch + 1, float(stopper.best)
    info.update(
        status="completed",
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(seconds, 2),
        epochs_run=epochs_run,
        parameters=int(model.count_params()),
        best={"monitor": monitor, "epoch": best_epoch, "value": best_value} if stopper else None,
        final=final_logs,
    )
    write_json_atomic(run_dir / RUN_INFO_FILE, info)
    return TrainResult(
        run_dir=run_dir,
        epochs_run=epochs_run,
        monitor=monitor if stopper else None,
        best_epoch=best_epoch,
        best_value=best_value,
        final_logs=final_logs,
        seconds=seconds,
    )
