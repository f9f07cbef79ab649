"""The Keras side of a trial: hand each epoch's logs to the reporter, stop when pruned."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.training.callbacks import Logs
from dltrain.tuning.trial import EpochReporter


class PruningCallback(keras.callbacks.Callback):
    """Reports the objective after each epoch and stops training when the pruner says so.

    It runs after dltrain's own callbacks (``train(extra_callbacks=...)``), so the logs it reads
    carry every validation metric of the epoch.
    """

    def __init__(self, reporter: EpochReporter) -> None:
        super().__init__()
        self.reporter = reporter

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.reporter.epoch_end(epoch + 1, dict(logs or {})):
            self.model.stop_training = True
