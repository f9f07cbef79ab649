"""A TensorFlow-free stand-in for ``python -m dltrain.tuning.trial``, for the tuner's fast tests.

It speaks the real protocol (``run_trial``: attach to the study, report every epoch, obey the
pruner, write the result file) but "trains" by computing a score from the parameters, so a
trial takes a second instead of TensorFlow's start-up. Some batch sizes act out failures:

- 13: the training step raises (a bug in a trial);
- 17: the process is killed by SIGKILL (what the kernel's out-of-memory killer does);
- 19: training diverges (dltrain's TrainingFailed);
- 23: the training step raises an error that quotes the study's storage URL, password and all
  (what a database driver's error may do).

``FAKE_EPOCH_SECONDS`` sets how long each epoch takes (default 0.01 s).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dltrain.errors import TrainingFailed
from dltrain.recipe import load_recipe
from dltrain.tuning.trial import STORAGE_ENV, EpochReporter, run_trial, serve

COMMAND = [sys.executable, str(Path(__file__).resolve())]
# `python -c LAUNCHER tune ...` is `dltrain tune ...` with this stand-in as its trial process.
LAUNCHER = f"""
import sys
import dltrain.tuning.runner as runner
runner.TRIAL_COMMAND = {COMMAND!r}
from dltrain.cli import main
sys.argv = ["dltrain", *sys.argv[1:]]
main()
"""


def fake_train(spec: dict[str, Any], reporter: EpochReporter) -> dict[str, Any]:
    overrides = [(path, value) for path, value in spec["overrides"]]
    recipe = load_recipe(Path(spec["recipe"]), overrides).recipe
    batch_size = recipe.train.batch_size
    if batch_size == 13:
        raise RuntimeError("simulated crash in the training step")
    if batch_size == 17:
        os.kill(os.getpid(), signal.SIGKILL)
    if batch_size == 23:
        raise RuntimeError(f"lost the study database {os.environ[STORAGE_ENV]}")
    learning_rate = recipe.train.optimizer.learning_rate
    dropout = getattr(recipe.model, "dropout", 0.0)
    # Best at learning rate 0.01 and no dropout; rises towards that over the epochs.
    quality = 0.9 - 0.2 * abs(math.log10(learning_rate) + 2) - 0.2 * dropout
    pause = float(os.environ.get("FAKE_EPOCH_SECONDS", "0.01"))
    for epoch in range(1, recipe.train.epochs + 1):
        time.sleep(pause)
        if batch_size == 19 and epoch == 2:
            raise TrainingFailed("Training diverged at epoch 2, batch 1: the loss became NaN.")
        value = quality * (1 - 0.5**epoch)
        if reporter.epoch_end(epoch, {"loss": 1 - value, "val_accuracy": value}):
            break
    return {"run_dir": None, "epochs_run": reporter.epochs_run}


if __name__ == "__main__":
    if sys.argv[1] == "--standby":
        sys.exit(serve(fake_train))
    sys.exit(run_trial(Path(sys.argv[1]), fake_train))
