"""One trial in its own process: ``python -m dltrain.tuning.trial SPEC.json``.

The tuner starts one process per trial, so whatever a trial allocates (TensorFlow graphs, GPU
memory, leaked tensors) goes back to the system when it ends, and a trial that crashes or is
killed cannot take the study with it. The process:

1. attaches to the study through the shared storage (URL in ``DLTRAIN_TUNE_STORAGE``, never on
   disk, since it may carry a password);
2. trains with ``dltrain.training.fit.train``, the function ``dltrain train`` runs, with a
   callback that reports the objective after every epoch and stops when the pruner says so;
3. writes its outcome to the result file the spec names; the tuner records it in the study.

Progress goes to stdout as JSON lines (``{"event": "epoch", ...}``) for the tuner's live table;
training's own output goes to stderr, which the tuner keeps as the trial's log.

This module imports TensorFlow only inside ``train_with_keras``, so other trial runners (and the
tests' stand-in) can reuse the protocol without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from dltrain.atomic import write_json_atomic
from dltrain.credentials import mask_credentials
from dltrain.errors import DltrainError, ExitCode, ObjectiveNotLogged, TrainingFailed
from dltrain.run_info import MlflowRef, TrialMarker
from dltrain.tuning.protocol import EpochEvent, TrainedTrial, TrialOutcome, TrialSpec

STORAGE_ENV = "DLTRAIN_TUNE_STORAGE"

TrainFunction = Callable[[TrialSpec, "EpochReporter"], TrainedTrial]


class EpochReporter:
    """Reports each epoch's objective to the study and says when the pruner stops the trial.

    Args:
        trial: the Optuna trial (anything with ``report`` and ``should_prune``).
        objective: the logged metric to optimise.
        direction: ``maximize`` or ``minimize``.
        events: where progress lines go (the tuner reads them).
        epochs: the epochs the trial trains at most; it is never pruned at the last one.
    """

    def __init__(
        self,
        trial: Any,
        objective: str,
        direction: str,
        events: TextIO,
        epochs: int | None = None,
    ) -> None:
        self.trial = trial
        self.epochs = epochs
        self.objective = objective
        self.maximize = direction == "maximize"
        self.events = events
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.last: float | None = None
        self.epochs_run = 0
        self.pruned_at: int | None = None

    def epoch_end(self, epoch: int, logs: Mapping[str, float]) -> bool:
        """Record epoch ``epoch`` (1-based); return True when the trial should stop (pruned).

        Raises:
            ObjectiveNotLogged: the logs do not hold the objective.
        """
        if self.objective not in logs:
            logged = ", ".join(k for k in logs if k not in ("epoch_seconds",))
            raise ObjectiveNotLogged(
                f"`tune.objective` is {self.objective!r}, which training does not log. Metrics "
                f"logged each epoch: {logged}. Set tune.objective to one of them (val_accuracy "
                f"or val_loss score the validation split)."
            )
        value = float(logs[self.objective])
        self.epochs_run = epoch
        self.emit(EpochEvent(event="epoch", epoch=epoch, value=value))
        if not math.isfinite(value):
            return False  # a diverging loss is the divergence guard's to report
        self.last = value
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            self.best, self.best_epoch = value, epoch
        self.trial.report(value, epoch)
        # Pruning at the last epoch saves nothing and would throw away a finished trial (a
        # Hyperband rung can fall there).
        if (self.epochs is None or epoch < self.epochs) and self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False

    def emit(self, event: EpochEvent) -> None:
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()

    def outcome(self) -> TrialOutcome:
        """The trial's state and value once training returned normally."""
        if self.pruned_at is not None:
            return {"state": "pruned", "value": self.last, "pruned_at_epoch": self.pruned_at}
        if self.best is None:
            return {
                "state": "fail",
                "kind": "no_value",
                "reason": f"{self.objective} was never a finite number in "
                f"{self.epochs_run} epoch(s).",
            }
        # A trial scores its best epoch, as KerasTuner does; with early stopping on the same
        # metric and restore_best_weights (the default) that is also the model it saved.
        return {"state": "complete", "value": self.best, "best_epoch": self.best_epoch}


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to stop this process when the tuner that started it dies (kill -9 included)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the tuner died before we could ask
        sys.exit(3)


@functools.cache
def trial_storage(url: str) -> Any:
    """The study database, opened once per process: in standby, before the trial is known."""
    from dltrain.tuning.storage import open_storage

    return open_storage(url, heartbeat=False)


def attach(spec: TrialSpec) -> Any:
    """The Optuna trial this process runs, through the shared storage."""
    import optuna

    from dltrain.tuning.study import make_pruner

    storage = trial_storage(os.environ[STORAGE_ENV])
    study = optuna.load_study(
        study_name=spec["study"],
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # parameters are already drawn by the tuner
        pruner=make_pruner(spec["pruner"]),
    )
    return optuna.trial.Trial(study, spec["trial_id"])


def train_with_keras(spec: TrialSpec, reporter: EpochReporter) -> TrainedTrial:
    """Train the trial's recipe exactly as ``dltrain train`` would, reporting every epoch."""
    from dltrain.console import make_console
    from dltrain.recipe import load_recipe
    from dltrain.training.fit import train
    from dltrain.tuning.callback import PruningCallback

    workdir = Path(spec["workdir"])
    overrides = [(path, value) for path, value in spec["overrides"]]
    loaded = load_recipe(Path(spec["recipe"]), overrides, cwd=workdir)
    from dltrain.tuning.folds import cross_validated_recipe, train_cross_validated

    folded = cross_validated_recipe(spec, loaded)
    if folded is not None:  # tune.folds: the trial scores the mean over K folds
        return train_cross_validated(spec, folded, reporter)
    result = train(
        loaded,
        workdir,
        make_console(),
        extra_callbacks=[PruningCallback(reporter)],
        trial=True,  # only what tuning reads: best.yaml retrains the winner with everything
        # Written before training starts, so even a trial cut short is known as one: commands
        # looking for the user's latest run skip it (dltrain.runs.is_tune_trial).
        tune=trial_marker(spec),
        tracking_parent=mlflow_parent(spec),
    )
    return TrainedTrial(run_dir=str(result.run_dir), epochs_run=result.epochs_run)


def mlflow_parent(spec: TrialSpec) -> MlflowRef | None:
    """The study's MLflow run, whose child run the trial logs to; None when it tracks nothing."""
    parent = spec.get("mlflow_parent")
    return MlflowRef.model_validate(parent) if parent else None


def trial_marker(spec: TrialSpec) -> TrialMarker:
    """The ``tune`` entry of a trial's run.json: its study, trial number and parameters."""
    return TrialMarker(study=spec["study"], trial=spec["trial_number"], params=spec["params"])


def run_trial(spec_path: Path, train_fn: TrainFunction) -> int:
    """Run one trial as the spec says and write its result file; the process's exit code.

    Args:
        spec_path: the trial spec the tuner wrote.
        train_fn: trains and returns ``{"run_dir": ..., "epochs_run": ...}``.
    """
    spec: TrialSpec = json.loads(spec_path.read_text(encoding="utf-8"))
    die_with_parent(int(spec["parent_pid"]))
    if spec.get("log"):  # from here on, what training prints is this trial's log
        sys.stderr.flush()
        log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 2)
        os.close(log)
    started = time.perf_counter()
    reporter: EpochReporter | None = None
    result: TrialOutcome
    try:
        reporter = EpochReporter(
            attach(spec), spec["objective"], spec["direction"], sys.stdout, spec.get("epochs")
        )
        finished = train_fn(spec, reporter)
        result = {**reporter.outcome(), **finished}
    except KeyboardInterrupt:
        result = {"state": "interrupted", "reason": "interrupted by the user"}
    except ObjectiveNotLogged as exc:
        result = _failed("objective_missing", exc.message)
    except TrainingFailed as exc:
        result = _failed("diverged", exc.message)
    except DltrainError as exc:
        if exc.exit_code == ExitCode.INTERRUPTED:  # training turns Ctrl-C into its own error
            result = {"state": "interrupted", "reason": "interrupted by the user"}
        else:
            result = _failed(exc.kind, exc.message)
    except MemoryError:
        result = _failed("out_of_memory", "ran out of memory (MemoryError).")
    except Exception as exc:
        # into the trial's log, which the user reads: the study's password stays out of it
        sys.stderr.write(mask_credentials(traceback.format_exc(), os.environ.get(STORAGE_ENV)))
        if type(exc).__name__ == "ResourceExhaustedError":
            result = _failed(
                "out_of_memory",
                "ran out of device memory (ResourceExhaustedError); a smaller batch_size or "
                "model fits.",
            )
        else:
            result = _failed("error", f"{type(exc).__name__}: {exc}".strip())
    if reporter is not None:
        result.setdefault("epochs_run", reporter.epochs_run)
    if "reason" in result:  # the study, trials.csv and summary.json keep it
        result["reason"] = mask_credentials(result["reason"], os.environ.get(STORAGE_ENV))
    result["seconds"] = round(time.perf_counter() - started, 2)
    write_json_atomic(Path(spec["result"]), result)
    return 130 if result["state"] == "interrupted" else 0


def serve(train_fn: TrainFunction, warm_up: Callable[[], None] | None = None) -> int:
    """Standby: get ready (import TensorFlow), then run the trial whose spec path comes on stdin.

    The tuner starts the next trial's process while the current one trains, so TensorFlow's
    start-up is off the critical path. An empty stdin means no trial was needed.
    """
    die_with_parent(os.getppid())
    if warm_up is not None:
        warm_up()
    line = sys.stdin.readline().strip()
    if not line:
        return 0
    return run_trial(Path(line), train_fn)


def warm_up_keras() -> None:
    """Import what a trial needs (TensorFlow first) and open the study, before the trial is known.

    Opening the database (SQLAlchemy's dialect, the first connection) takes most of a second;
    in standby it costs the trial nothing. A storage that fails to open here fails again in
    ``attach``, where the trial records why.
    """
    import optuna  # noqa: F401

    import dltrain.console  # noqa: F401
    import dltrain.training.fit  # noqa: F401
    import dltrain.tuning.callback  # noqa: F401
    import dltrain.tuning.storage  # noqa: F401
    import dltrain.tuning.study  # noqa: F401

    url = os.environ.get(STORAGE_ENV)
    if url:
        with contextlib.suppress(Exception):
            trial_storage(url)


def _failed(kind: str, reason: str) -> TrialOutcome:
    return {"state": "fail", "kind": kind, "reason": reason}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(
            "usage: python -m dltrain.tuning.trial SPEC.json | --standby (run by dltrain tune)\n"
        )
        return 2
    try:
        if args[0] == "--standby":
            return serve(train_with_keras, warm_up_keras)
        return run_trial(Path(args[0]), train_with_keras)
    except Exception:  # run_trial reports the trial's own failures; this is what is left
        # Python's own report would go to the log as it is: hide the study's password first.
        sys.stderr.write(mask_credentials(traceback.format_exc(), os.environ.get(STORAGE_ENV)))
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The result file is written and every training file closed; skipping the interpreter's
    # teardown saves the seconds TensorFlow takes to shut down, per trial.
    os._exit(code)
