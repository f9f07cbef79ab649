"""The run record: a run folder's run.json, opened when training starts and closed when it ends.

A new run writes the resolved recipe, the data's manifest and run.json (status ``running``)
before training starts; a resumed run notes the resume and cuts its history back to its last
checkpoint. At the end, run.json says what training did (``completed``), or why it stopped
(``interrupted``, ``diverged``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dltrain.errors import TrainingInterrupted
from dltrain.runs import (
    RunFolder,
    new_run_dir,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from dltrain.training.callbacks import TimeBudget
from dltrain.training.checkpoints import ResumableEarlyStopping, load_state
from dltrain.training.multiworker import scratch_root
from dltrain.training.plan import RunPlan, environment


@dataclass(frozen=True)
class RunRecord:
    """The run folder training writes into, and its run.json as it stands."""

    run_dir: Path
    info: dict[str, Any]

    @property
    def files(self) -> RunFolder:
        """The paths of the run's files."""
        return RunFolder(self.run_dir)

    def write(self, status: str | None = None) -> None:
        """Write run.json; with ``status``, that status without changing the record's own."""
        info = self.info if status is None else {**self.info, "status": status}
        write_json_atomic(self.files.info, info)


def open_run_record(plan: RunPlan, workdir: Path, run_info: Mapping[str, Any] | None) -> RunRecord:
    """Start a new run folder, or take up the resumed one; its run.json says it is running.

    Args:
        plan: the run's plan.
        workdir: the folder holding runs/.
        run_info: entries for a new run's run.json.

    Returns:
        The run folder and its run.json entries.
    """
    record = _new_record(plan, workdir, run_info) if plan.resume_dir is None else _resumed(plan)
    record.info.update(
        status="running", **environment(plan.recipe.seed, plan.devices, plan.spec.deterministic)
    )
    record.write()
    return record


def _new_record(plan: RunPlan, workdir: Path, run_info: Mapping[str, Any] | None) -> RunRecord:
    """A new run folder holding the resolved recipe and the data's manifest."""
    recipe, dataset = plan.recipe, plan.dataset
    run_dir = new_run_dir(workdir if plan.devices.is_chief else scratch_root(), recipe.name)
    files = RunFolder(run_dir)
    write_text_atomic(files.recipe, plan.loaded.to_yaml())
    # the manifest too, so the run describes its inputs and classes without data/
    write_json_atomic(files.manifest, dataset.manifest.to_json())
    info: dict[str, Any] = {
        "recipe": recipe.name,
        "recipe_file": str(plan.loaded.path),
        "status": "running",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        **(run_info or {}),
        "data": {
            "folder": str(dataset.folder),
            "fingerprint": dataset.manifest.source.fingerprint,
        },
    }
    return RunRecord(run_dir, info)


def _resumed(plan: RunPlan) -> RunRecord:
    """The resumed run's folder, its history cut back to its last checkpoint."""
    assert plan.resume_dir is not None
    run_dir = plan.resume_dir
    files = RunFolder(run_dir)
    info = read_json(files.info)
    info["resumed"] = [*info.get("resumed", []), {"at_epoch": plan.initial_epoch, "when": _now()}]
    _truncate_history(files.history, plan.initial_epoch)
    return RunRecord(run_dir, info)


def record_interruption(plan: RunPlan, record: RunRecord) -> TrainingInterrupted:
    """Mark the run interrupted; the error that tells how to resume it.

    Args:
        plan: the run's plan.
        record: the run's record.

    Returns:
        The error to raise.
    """
    record.write(status="interrupted")
    done = (load_state(record.run_dir) or {}).get("epoch", 0)
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
    best_epoch: int | None  # 1-based
    best_value: float | None
    stopped_by: str  # epochs | early_stopping | time_budget


def read_outcome(
    history: list[dict[str, float]],
    stopper: ResumableEarlyStopping | None,
    budget: TimeBudget | None,
) -> Outcome:
    """What training did: epochs run, last logs, best epoch and why it stopped.

    Args:
        history: history.csv's rows.
        stopper: the run's early stopping, if on.
        budget: the run's time budget, if set.
    """
    final_logs = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
    best_epoch = best_value = None
    if stopper is not None and stopper.best is not None and math.isfinite(stopper.best):
        best_epoch, best_value = stopper.best_epoch + 1, float(stopper.best)
    stopped_by = "epochs"
    if budget is not None and budget.exhausted:
        stopped_by = "time_budget"
    elif stopper is not None and stopper.stopped_epoch > 0:
        stopped_by = "early_stopping"
    return Outcome(len(history), final_logs, best_epoch, best_value, stopped_by)


def complete_record(
    record: RunRecord,
    plan: RunPlan,
    early_stopping: bool,
    outcome: Outcome,
    seconds: float,
    digest: str | None,
    parameters: int,
) -> None:
    """Write run.json as completed, with what training did.

    Args:
        record: the run's record.
        plan: the run's plan.
        early_stopping: whether early stopping watched the run (it then has a best epoch).
        outcome: what training did.
        seconds: how long this session's fitting took (a resumed run adds its earlier time).
        digest: the weights' SHA-256 across workers; None on one machine.
        parameters: the model's parameter count.
    """
    info = record.info
    if digest is not None:
        info["distribution"]["weights_sha256"] = digest
    monitor = plan.spec.early_stopping.monitor
    info.update(
        status="completed",
        finished=_now(),
        seconds=round(seconds + float(info.get("seconds", 0.0)), 2),
        epochs_run=outcome.epochs_run,
        stopped_by=outcome.stopped_by,
        parameters=parameters,
        best={"monitor": monitor, "epoch": outcome.best_epoch, "value": outcome.best_value}
        if early_stopping
        else None,
        final=outcome.final_logs,
    )
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
