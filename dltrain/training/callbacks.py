"""Callbacks dltrain adds to Keras's: per-epoch statistics and the progress display."""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dltrain.backend import keras

# What Keras passes a callback: each metric's value by its logged name (``loss``, ``val_accuracy``)
# and, from ``EpochStats`` on, ``learning_rate`` and ``epoch_seconds``. Keras's own signatures
# leave it untyped; every callback of dltrain's names it so.
Logs = dict[str, float]


class EpochStats(keras.callbacks.Callback):
    """Adds ``learning_rate`` and ``epoch_seconds`` to each epoch's logs.

    It must run before the loggers (CSVLogger, progress) so that they record both.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is None:
            return
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        logs["epoch_seconds"] = time.perf_counter() - self._started


def format_logs(logs: Logs, keys: list[str] | None = None) -> str:
    """``loss 0.3120  accuracy 0.9010 …`` for the given keys (default: all but timing)."""
    parts = []
    for key in keys or [k for k in logs if k not in ("epoch_seconds",)]:
        value = logs.get(key)
        if isinstance(value, int | float):
            text = f"{value:.3g}" if key == "learning_rate" else f"{value:.4f}"
            parts.append(f"{key} {text}")
    return "  ".join(parts)


# How often the live display reads loss, metrics and the learning rate: Rich's own refresh rate.
STATS_SECONDS = 0.1


class ProgressDisplay(keras.callbacks.Callback):
    """Rich live bars on a terminal; one plain line per epoch otherwise (CI logs).

    The live display shows an epoch bar and a batch bar with loss, metrics, learning rate,
    samples/s and ETA. Both modes print a summary line at the end of each epoch.
    """

    def __init__(self, console: Console, *, epochs: int, steps_per_epoch: int, batch_size: int):
        super().__init__()
        self.console = console
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.live = console.is_terminal and not console.is_dumb_terminal
        self._progress: Progress | None = None
        self._epoch_task: TaskID | None = None
        self._batch_task: TaskID | None = None
        self._epoch_started = 0.0
        self._stats_read = -STATS_SECONDS  # when the stats text was last refreshed

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._epoch_task = self._progress.add_task("epochs", total=self.epochs, stats="")
        self._batch_task = self._progress.add_task("batches", total=self.steps_per_epoch, stats="")

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch_started = time.perf_counter()
        if self._progress is not None and self._batch_task is not None:
            self._progress.reset(
                self._batch_task, total=self.steps_per_epoch, description=f"epoch {epoch + 1}"
            )

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._progress is None or self._batch_task is None:
            return
        now = time.perf_counter()
        if now - self._stats_read < STATS_SECONDS and batch + 1 < self.steps_per_epoch:
            # Reading the rate from the optimizer's variable cost 0.7 ms a batch (86% of the
            # display's cost, 8% of a small model's epoch); Rich redraws 10 times a second.
            self._progress.update(self._batch_task, completed=batch + 1)
            return
        self._stats_read = now
        rate = (batch + 1) * self.batch_size / max(now - self._epoch_started, 1e-9)
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        stats = f"{format_logs(logs or {})}  lr {learning_rate:.3g}  {rate:,.0f} samples/s"
        self._progress.update(self._batch_task, completed=batch + 1, stats=stats)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        seconds = logs.get("epoch_seconds", time.perf_counter() - self._epoch_started)
        rate = self.steps_per_epoch * self.batch_size / max(seconds, 1e-9)
        width = len(str(self.epochs))
        line = (
            f"epoch {epoch + 1:>{width}}/{self.epochs}  {format_logs(logs)}  "
            f"{seconds:.1f}s  {rate:,.0f} samples/s"
        )
        if self._progress is not None and self._epoch_task is not None:
            self._progress.update(self._epoch_task, completed=epoch + 1)
            self._progress.console.print(line, highlight=False)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite and says where."""

    def __init__(self) -> None:
        super().__init__()
        self.diverged_at: tuple[int, int] | None = None  # (epoch, batch), 1-based
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = (self._epoch + 1, batch + 1)
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stops training once ``seconds`` have passed; early stopping then restores the best epoch.

    Checked after every batch callback (a clock read, nothing more), so the overrun is at most
    one batch plus the epoch's validation; under TF_CONFIG the loop calls back once per
    execution of several batches (training/multiworker.py STEPS_PER_EXECUTION), so up to that
    many batches.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.exhausted = False
        self._started = 0.0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if not self._started:  # a second fit (fine-tuning) spends what is left, not a new budget
            self._started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if time.perf_counter() - self._started >= self.seconds:
            self.exhausted = True
            self.model.stop_training = True
