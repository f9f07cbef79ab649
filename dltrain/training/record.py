"""The run record: a run folder's run.json, opened when training starts and closed when it ends.

A new run writes the resolved recipe, the data's manifest and run.json (status ``running``)
before training starts; a resumed run notes the resume and cuts its history back to its last
checkpoint. At the end, run.json says what training did (``completed``), or why it stopped
(``interrupted``, ``diverged``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dltrain.atomic import write_json_atomic, write_text_atomic
from dltrain.errors import TrainingInterrupted
from dltrain.run_info import (
    BestEpoch,
    DataRef,
    Resume,
    RunInfo,
    RunStatus,
    StopReason,
    TrialMarker,
    this_process,
)
from dltrain.runs import RunFolder, new_run_dir
from dltrain.training.checkpoints import StopperState, load_state, settle_best
from dltrain.training.multiworker import scratch_root
from dltrain.training.plan import RunPlan, environment


@dataclass(frozen=True)
class RunRecord:
    """The run folder training writes into, and its run.json as it stands."""

    run_dir: Path
    info: RunInfo

    @property
    def files(self) -> RunFolder:
        """The paths of the run's files."""
        return RunFolder(self.run_dir)

    def write(self, status: RunStatus | None = None) -> None:
        """Write run.json; with ``status``, that status without changing the record's own."""
        info = self.info if status is None else self.info.model_copy(update={"status": status})
        self.files.write_info(info)


def open_run_record(
    plan: RunPlan, workdir: Path, tune: TrialMarker | None, run_dir: Path | None = None
) -> RunRecord:
    """Start a new run folder, or take up the resumed one; its run.json says it is running.

    Args:
        plan: the run's plan.
        workdir: the folder holding runs/.
        tune: a trial's marker, for a new run's run.json; None for a user's run.
        run_dir: where a new run goes instead of a new folder under runs/ (a fold's folder).

    Returns:
        The run folder and its record.

    Raises:
        RunError: the resumed run's run.json cannot be read.
    """
    if plan.resume_dir is not None:
        record = _resumed(plan)
    else:
        record = _new_record(plan, workdir, tune, run_dir)
    record.info.status = RunStatus.RUNNING
    record.info.owner = this_process()  # read back as killed once this process is gone
    record.info.take_environment(
        environment(plan.recipe.seed, plan.devices, plan.spec.deterministic)
    )
    record.write()
    return record


def _new_record(
    plan: RunPlan, workdir: Path, tune: TrialMarker | None, run_dir: Path | None
) -> RunRecord:
    """A new run folder holding the resolved recipe and the data's manifest."""
    recipe, dataset = plan.recipe, plan.dataset
    if run_dir is not None:
        run_dir.mkdir(parents=True)
    else:
        run_dir = new_run_dir(workdir if plan.devices.is_chief else scratch_root(), recipe.name)
    files = RunFolder(run_dir)
    write_text_atomic(files.recipe, plan.loaded.to_yaml())
    # the manifest too, so the run describes its inputs and classes without data/
    write_json_atomic(files.manifest, dataset.manifest.to_json())
    info = RunInfo(
        recipe=recipe.name,
        recipe_file=str(plan.loaded.path),
        status=RunStatus.RUNNING,
        started=_now(),
        data=DataRef(folder=str(dataset.folder), fingerprint=dataset.manifest.source.fingerprint),
    )
    if tune is not None:
        info.tune = tune
    return RunRecord(run_dir, info)


def _resumed(plan: RunPlan) -> RunRecord:
    """The resumed run's folder, its history cut back to its last checkpoint and its best
    checkpoint the one state.json names."""
    assert plan.resume_dir is not None and plan.state is not None
    files = RunFolder(plan.resume_dir)
    info = files.read_info()
    info.resumed = [*info.resumed, Resume(at_epoch=plan.initial_epoch, when=_now())]
    _truncate_history(files.history, plan.initial_epoch)
    settle_best(files.path, plan.state)
    return RunRecord(files.path, info)


def record_interruption(plan: RunPlan, record: RunRecord) -> TrainingInterrupted:
    """Mark the run interrupted; the error that tells how to resume it.

    Args:
        plan: the run's plan.
        record: the run's record.

    Returns:
        The error to raise.
    """
    record.write(status=RunStatus.INTERRUPTED)
    state = load_state(record.run_dir)
    done = state.epoch if state else 0
    return TrainingInterrupted(
        f"Training stopped at your request after {done} completed epoch(s) of "
        f"{plan.spec.epochs}; run {record.run_dir} keeps its last checkpoint. Continue it with: "
        f"dltrain train --resume --run {record.run_dir}"
    )


@dataclass(frozen=True)
class Outcome:
    """What the finished training did, read from its history and its callbacks."""

    epochs_run: int
    final_logs: dict[str, float]
    best: BestEpoch | None  # None: no early stopping watched the run
    stopped_by: StopReason


def read_outcome(
    history: list[dict[str, float]],
    best: BestEpoch | None,
    stopped_by: StopReason | None,
) -> Outcome:
    """What training did: epochs run, last logs, best epoch and why it stopped.

    Args:
        history: history.csv's rows.
        best: the best epoch by early stopping's monitor (``best_epoch``); None when it was off.
        stopped_by: what ended training before its last epoch; None: the epochs ran out.
    """
    final_logs = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
    return Outcome(len(history), final_logs, best, stopped_by or StopReason.EPOCHS)


def best_epoch(monitor: str, stopper: StopperState | None) -> BestEpoch | None:
    """Early stopping's best epoch, as run.json records it; None when early stopping was off.

    Args:
        monitor: what early stopping watched.
        stopper: where it stood at the end (from the callback, or a resumed run's state.json).
    """
    if stopper is None:
        return None
    best = BestEpoch(monitor=monitor, epoch=None, value=None)
    if stopper.best is not None and math.isfinite(stopper.best):
        best.epoch, best.value = stopper.best_epoch + 1, float(stopper.best)
    return best


def complete_record(
    record: RunRecord, outcome: Outcome, seconds: float, digest: str | None, parameters: int
) -> None:
    """Write run.json as completed, with what training did.

    Args:
        record: the run's record.
        outcome: what training did.
        seconds: how long this session's fitting took (a resumed run adds its earlier time).
        digest: the saved weights' SHA-256 (the same on every worker); None if not computed.
        parameters: the model's parameter count.
    """
    info = record.info
    if digest is not None:
        info.weights_sha256 = digest
        if info.distribution is not None:
            info.distribution.weights_sha256 = digest
    info.status = RunStatus.COMPLETED
    info.finished = _now()
    info.seconds = round(seconds + (info.seconds or 0.0), 2)
    info.epochs_run = outcome.epochs_run
    info.stopped_by = outcome.stopped_by
    info.parameters = parameters
    info.best = outcome.best
    info.final = outcome.final_logs
    record.write()


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv's rows, one per epoch, as numbers (cells left empty are left out)."""
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _truncate_history(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows: a crash may have logged an epoch whose
    checkpoint was never completed, and that epoch is trained again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    write_text_atomic(path, "".join(lines[: epochs + 1]))
