"""Checkpoints that survive ``kill -9``, and the state a resumed run continues from.

After every epoch the whole model (weights and optimizer state, so the learning-rate schedule
resumes where it was) is written to ``checkpoints/epoch-NNNN.keras`` under a temporary name, then
``checkpoints/state.json`` is replaced to point at it. A crash at any moment leaves a state file
naming a complete checkpoint. ``checkpoints/best.keras`` holds the best epoch by the monitor.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from dltrain.backend import keras
from dltrain.runs import RunFolder, atomic_path, read_json, write_json_atomic

_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1")


def monitor_mode(monitor: str, mode: str) -> str:
    """``min`` or ``max`` for a monitored quantity; ``auto`` decides by its name.

    Keras's own ``auto`` gives up on names it does not know (a GAN's ``val_g_loss``, say).
    """
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in _HIGHER_IS_BETTER) else "min"


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping whose counters and best weights carry over a resume.

    Keras 3 restores the best weights at the end of training whether or not it stopped early,
    which is what we want: the saved model is always the best epoch's.
    """

    def __init__(self, *args: Any, resume_from: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._resume_from = resume_from

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        state, self._resume_from = self._resume_from, None
        if state:
            self.best = state["best"]
            self.best_epoch = state["best_epoch"]
            self.wait = state["wait"]
            self.best_weights = state.get("best_weights")

    def resume_from(self, state: dict[str, Any]) -> None:
        """Start the next ``fit`` from this state instead of afresh."""
        self._resume_from = state

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes the epoch's checkpoint, the best checkpoint and state.json after every epoch."""

    def __init__(
        self, run_dir: Path, monitor: str, mode: str, stopper: ResumableEarlyStopping | None
    ):
        super().__init__()
        self.files = RunFolder(run_dir)
        self.files.checkpoints.mkdir(exist_ok=True)
        self.monitor = monitor
        self.maximize = monitor_mode(monitor, mode) == "max"
        self.stopper = stopper
        previous = load_state(run_dir)
        self.best: float | None = previous.get("best_value") if previous else None
        self.best_epoch: int | None = previous.get("best_epoch") if previous else None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.maximize else value < self.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        path = self.files.checkpoint(epoch + 1)
        with atomic_path(path) as tmp:
            self.model.save(tmp)
        value = logs.get(self.monitor)
        if value is not None and math.isfinite(float(value)) and self._improved(float(value)):
            self.best, self.best_epoch = float(value), epoch + 1
            with atomic_path(self.files.best_checkpoint) as tmp:
                shutil.copyfile(path, tmp)
        state = {
            "epoch": epoch + 1,
            "checkpoint": path.name,
            "monitor": self.monitor,
            "best_value": self.best,
            "best_epoch": self.best_epoch,
            "early_stopping": self.stopper.state() if self.stopper else None,
        }
        write_json_atomic(self.files.state, state)
        for old in self.files.checkpoints.glob("epoch-*.keras"):
            if old != path:
                old.unlink(missing_ok=True)


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """The last completed epoch's state, or None when the run has no checkpoint yet."""
    path = RunFolder(run_dir).state
    return read_json(path) if path.is_file() else None


def best_weights(run_dir: Path) -> list[Any] | None:
    """The best checkpoint's weights, for early stopping to carry over a resume."""
    path = RunFolder(run_dir).best_checkpoint
    if not path.is_file():
        return None
    from dltrain.models.saving import load_model

    return list(load_model(path, compile=False).get_weights())
