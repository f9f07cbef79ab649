"""The runs of a recipe side by side, with their key metrics. Light: reads JSON files only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltrain.atomic import read_json
from dltrain.errors import RunError, UsageError
from dltrain.evaluation.catalog import KEY_METRICS, Better, Metrics, better
from dltrain.run_info import BestEpoch, RunInfo
from dltrain.runs import RunFolder, run_folders

RUN_FIELDS = ("run", "status", "started", "epochs", "seconds", "parameters", "best")


@dataclass
class RunRow:
    """One run folder: what run.json says about training, and its metrics on a split."""

    path: Path
    status: str
    started: str | None = None
    epochs: int | None = None
    seconds: float | None = None
    parameters: int | None = None
    best: BestEpoch | None = None  # None: no early stopping watched the run
    task: str | None = None
    metrics: Metrics = field(default_factory=dict)
    # evaluate's baselines on the same examples, {"prior": {"accuracy": 0.5}}; {} when absent
    baselines: dict[str, Metrics] = field(default_factory=dict)
    evaluated: str | None = None
    passed: bool | None = None

    @property
    def run(self) -> str:
        """The run's id: its folder's name."""
        return self.path.name

    def value(self, key: str) -> Any:
        """A metric, or one of the training fields (``epochs``, ``seconds``, ``best``, …)."""
        if key == "best":
            return None if self.best is None else self.best.value
        if key in RUN_FIELDS:
            return getattr(self, key)
        return self.metrics.get(key)

    def to_json(self) -> dict[str, Any]:
        """The row as an entry of ``runs --json``."""
        return {
            "run": self.run,
            "path": str(self.path),
            "status": self.status,
            "started": self.started,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "parameters": self.parameters,
            "best": self.best.to_json() if self.best else None,
            "task": self.task,
            "evaluated": self.evaluated,
            "passed": self.passed,
            "metrics": self.metrics,
            "baselines": self.baselines,
        }


def read_run(path: Path, split: str) -> RunRow:
    """Read one run folder; missing or unreadable files leave their fields empty."""
    files = RunFolder(path)
    try:
        info = files.read_info()
    except RunError:
        info = RunInfo()
    status = str(info.current_status or "unknown")
    if status == "completed" and not files.finished:
        status = "no model"
    row = RunRow(
        path=path,
        status=status,
        started=info.started,
        epochs=info.epochs_run,
        seconds=info.seconds,
        parameters=info.parameters,
        best=info.best,
    )
    try:
        document: dict[str, Any] = read_json(files.metrics(split))
    except (OSError, ValueError):
        return row
    metrics = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(metrics, dict) or not all(
        isinstance(v, int | float) or v is None for v in metrics.values()
    ):
        raise RunError(
            f"{files.metrics(split)} is not a metrics document this dltrain reads (its "
            f"`metrics` should map names to numbers). To write it anew, evaluate the run again "
            f"(`dltrain evaluate --run {path}`), or delete the file."
        )
    row.metrics = dict(metrics)
    row.baselines = read_baselines(document.get("baselines"))
    row.task = document.get("task")
    row.evaluated = document.get("evaluated")
    row.passed = document.get("passed")
    return row


def read_baselines(section: Any) -> dict[str, Metrics]:
    """metrics.json's ``baselines`` (name → metric → number), keeping only well-formed entries:
    a document without them, or from another version, gives ``{}``."""
    if not isinstance(section, dict):
        return {}
    return {
        str(name): {str(k): v for k, v in values.items() if isinstance(v, int | float) or v is None}
        for name, values in section.items()
        if isinstance(values, dict)
    }


def list_runs(
    root: Path, split: str = "test", *, include_trials: bool = False
) -> tuple[list[RunRow], int]:
    """The run folders under ``runs/<recipe>/``, oldest first (run ids sort by time).

    Returns:
        ``(rows, hidden)``: the runs, and how many ``dltrain tune`` trials were left out
        (all are listed with ``include_trials``).
    """
    folders, hidden = run_folders(root, include_trials)
    # runs/<recipe>/ also holds other folders (tune/, lr-finder/): a run has run.json
    return [read_run(p, split) for p in folders if RunFolder(p).info.is_file()], hidden


def sort_runs(rows: list[RunRow], key: str | None) -> list[RunRow]:
    """Best first for a metric (its better direction), newest first for ``started``.

    Runs without the value go last.

    Raises:
        UsageError: ``key`` is neither a training field nor a metric any run has.
    """
    if key is None:
        return rows
    known = set(RUN_FIELDS) | {k for r in rows for k in r.metrics}
    if key not in known:
        raise UsageError(
            f"--sort {key!r} is not a column of these runs. Expected one of: "
            f"{', '.join(sorted(known))}."
        )
    descending = key in ("started", "run", "best") or better(key) == Better.HIGHER
    if key == "best":
        # best holds each run's monitored value; its direction is the monitor's
        monitors = {r.best.monitor for r in rows if r.best}
        monitor = next(iter(monitors)) if len(monitors) == 1 else None
        descending = monitor is not None and better(monitor.removeprefix("val_")) == Better.HIGHER
    present = [r for r in rows if r.value(key) is not None]
    absent = [r for r in rows if r.value(key) is None]
    return sorted(present, key=lambda r: r.value(key), reverse=descending) + absent


def default_metrics(rows: list[RunRow]) -> list[str]:
    """The key metrics of the task the evaluated runs share, in catalogue order."""
    tasks = [r.task for r in rows if r.task]
    if not tasks:
        return []
    names = [n for n in KEY_METRICS.get(tasks[-1], ()) if any(n in r.metrics for r in rows)]
    return names
