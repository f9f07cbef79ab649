"""``dltrain verify``: train a finished run again from its saved recipe and seed, and say whether
the rerun reproduced it (history, final logs, best epoch, weights).

The rerun trains in a hidden scratch folder beside the run (``runs/<recipe>/.verify-…/``) whose
``data/<recipe>`` points at the run's own prepared data, so no run changes; it is deleted at the
end, or, kept, renamed into a sibling run folder, ``runs/<recipe>/<new run id>/``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltrain.errors import DataError, RunError, TrainingFailed, TrainingInterrupted, UsageError
from dltrain.recipe import LoadedRecipe
from dltrain.run_info import RunInfo, RunStatus, StopReason
from dltrain.runs import RunFolder, new_run_in
from dltrain.training.reproduction import (
    Check,
    Reproduction,
    Verdict,
    check_recorded_digest,
    compare_finals,
    compare_history,
    compare_numbers,
    compare_weights,
)

DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify and how.

    Attributes:
        run: the finished run folder.
        tolerance: largest allowed difference (see training/reproduction.py).
        keep: keep the rerun as a sibling run folder instead of deleting it.
    """

    run: Path
    tolerance: float = DEFAULT_TOLERANCE
    keep: bool = False


@dataclass
class VerifyResult:
    """The rerun's verdict."""

    run: Path
    reproduction: Reproduction
    deterministic: bool
    seconds: float
    kept: Path | None = None  # the rerun's folder when kept
    overrides: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.reproduction.passed

    def to_json(self) -> dict[str, Any]:
        """The document ``dltrain verify --json`` writes."""
        reproduction = self.reproduction
        return {
            "run": str(self.run),
            "passed": self.passed,
            "tolerance": reproduction.tolerance,
            "deterministic": self.deterministic,
            "rerun": str(self.kept) if self.kept else None,
            "overrides": {key: value for key, value in self.overrides},
            "seconds": round(self.seconds, 2),
            "checks": [check.to_json() for check in reproduction.checks],
            "differing": [check.name for check in reproduction.differing],
            "notes": list(reproduction.notes),
        }


@dataclass(frozen=True)
class _Original:
    """The run to verify, checked: its record, recipe, data folder and what to change."""

    files: RunFolder
    info: RunInfo
    loaded: LoadedRecipe
    data: Path
    overrides: list[tuple[str, Any]]
    notes: list[str]


# trains the recipe into a work folder: (recipe, workdir) -> the new run folder
Trainer = Callable[[LoadedRecipe, Path], Path]


def verify_run(request: VerifyRequest, trainer: Trainer) -> VerifyResult:
    """Retrain ``request.run`` from its saved recipe and seed and compare the rerun with it.

    Args:
        request: the run, the tolerance, whether to keep the rerun.
        trainer: trains a recipe in a work folder and returns the run folder (the CLI passes
            ``training.fit.train`` with its console).

    Returns:
        Every check and the notes that qualify them.

    Raises:
        RunError: not a run folder, a run not finished, or one trained across machines.
        RecipeError: its saved recipe no longer validates.
        DataError: its prepared data is gone or changed since it trained.
    """
    original = _check_original(request.run)
    started = time.perf_counter()
    # beside the run: the same disk (checkpoints), and a kept rerun is renamed, not copied; no
    # command takes it for a run (it has no run.json of its own)
    scratch = Path(tempfile.mkdtemp(prefix=".verify-", dir=original.files.path.parent))
    try:
        data_link = scratch / "data" / original.loaded.recipe.name
        data_link.parent.mkdir()
        data_link.symlink_to(original.data.resolve(), target_is_directory=True)
        rerun = _retrain(trainer, original, scratch)
        reproduction = compare_runs(original.files, RunFolder(rerun), request.tolerance)
        reproduction.notes[:0] = original.notes
        kept = _keep(rerun, original) if request.keep else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return VerifyResult(
        run=original.files.path,
        reproduction=reproduction,
        deterministic=bool(original.info.deterministic),
        seconds=time.perf_counter() - started,
        kept=kept,
        overrides=original.overrides,
    )


def _retrain(trainer: Trainer, original: _Original, scratch: Path) -> Path:
    """The rerun's folder; its failures said as verify's, since its scratch folder goes."""
    run = original.files.path
    try:
        return trainer(original.loaded, scratch)
    except TrainingInterrupted:
        raise TrainingInterrupted(
            f"verify stopped at your request; the rerun is deleted and {run} is unchanged."
        ) from None
    except TrainingFailed as exc:
        raise TrainingFailed(
            f"Not reproduced: the rerun of {run} failed where the run completed. "
            f"{exc.message.split(' The best epoch so far')[0]}"
        ) from None


def _check_original(run: Path) -> _Original:
    """Refuse what cannot be retrained and compared, before anything trains."""
    files = RunFolder(run)
    if not run.is_dir():
        raise RunError(
            f"Run folder {run} does not exist. Expected a folder written by `dltrain train`, "
            f"such as runs/<recipe>/<run id>/."
        )
    info = files.read_info()
    status = info.current_status
    if status is not RunStatus.COMPLETED or not files.finished:
        raise RunError(
            f"Run {run} is {status.value if status else 'of unknown status'}"
            f"{'' if files.finished else ', with no model.keras'}: only a finished run can be "
            f"verified. Finish it with `dltrain train --resume --run {run}`, or pick another."
        )
    if info.distribution is not None:
        raise UsageError(
            f"Run {run} trained across {info.distribution.num_workers} machines (TF_CONFIG); "
            f"verify retrains on this machine alone, which sums gradients in another order. "
            f"Compare the workers' `weights_sha256` in their `dltrain train --json` instead."
        )
    if not files.recipe.is_file():
        raise RunError(f"Run {run} has no {files.recipe.name}; it cannot be retrained.")
    from dltrain.recipe.load import load_recipe

    overrides, notes = _overrides(info)
    loaded = load_recipe(files.recipe, overrides)
    data = _check_data(run, info)
    notes += _notes(info)
    return _Original(files, info, loaded, data, overrides, notes)


def _check_data(run: Path, info: RunInfo) -> Path:
    """The run's prepared data folder, refused if it changed since the run trained on it."""
    from dltrain.data.store import open_store

    if info.data is None:
        raise RunError(f"{RunFolder(run).info} does not say which prepared data the run used.")
    folder = Path(info.data.folder)
    if not folder.is_absolute():
        folder = run.resolve().parents[2] / folder  # runs/<recipe>/<id> → the project
    dataset = open_store(folder)
    now = dataset.manifest.source.fingerprint
    if now != info.data.fingerprint:
        raise DataError(
            f"The prepared data {folder} changed since run {run} trained on it (source "
            f"fingerprint {info.data.fingerprint[:12]} then, {now[:12]} now): a rerun on it "
            f"would not be the same run. Prepare the source the run used again, or verify a "
            f"run trained on the data as it is now."
        )
    return folder


def _overrides(info: RunInfo) -> tuple[list[tuple[str, Any]], list[str]]:
    """What the rerun must change to retrace the run: a time budget ends at a wall-clock
    moment, so the rerun trains the epochs the run finished instead."""
    if info.stopped_by is StopReason.TIME_BUDGET and info.epochs_run:
        note = (
            f"The run was stopped by its time budget after {info.epochs_run} epochs; the rerun "
            f"trains exactly those epochs, without a budget."
        )
        return [("train.time_budget", None), ("train.epochs", info.epochs_run)], [note]
    return [], []


def _notes(info: RunInfo) -> list[str]:
    """What makes the comparison less than exact, said plainly."""
    notes = []
    if not info.deterministic:
        notes.append(
            "The run was not deterministic (train.deterministic: false): TensorFlow was free to "
            "sum in any order, so a rerun may differ slightly and a difference beyond the "
            "tolerance does not prove a bug. The rerun trains as the run did; for an exact "
            "check, train with --deterministic and verify that run."
        )
    if info.resumed:
        at = ", ".join(str(r.at_epoch) for r in info.resumed)
        notes.append(
            f"The run was resumed (after epoch {at}); a resumed run reshuffles from the seed "
            f"plus the epoch, so an uninterrupted rerun differs from that epoch on."
        )
    return notes


def compare_runs(original: RunFolder, rerun: RunFolder, tolerance: float) -> Reproduction:
    """Compare a run with its rerun: history, final logs, best epoch, weights.

    Args:
        original: the run folder verified.
        rerun: its rerun's folder.
        tolerance: see training/reproduction.py.

    Returns:
        The checks, in the order they are shown.
    """
    from dltrain.models.saving import load_model
    from dltrain.training.record import read_history

    a_info, b_info = original.read_info(), rerun.read_info()
    reproduction = Reproduction(tolerance)
    checks = reproduction.checks
    checks += compare_history(
        read_history(original.history), read_history(rerun.history), tolerance
    )
    checks += compare_finals(a_info.final, b_info.final, tolerance)
    checks += _best_checks(a_info, b_info, tolerance)
    a_weights = load_model(original.model, compile=False).get_weights()
    b_weights = load_model(rerun.model, compile=False).get_weights()
    weights = compare_weights(a_weights, b_weights, tolerance)
    checks.append(weights)
    checks.append(check_recorded_digest(a_info.weights_sha256, weights.original))
    if a_info.device and b_info.device and a_info.device != b_info.device:
        reproduction.notes.append(
            f"The run trained on {a_info.device}, the rerun on {b_info.device}: other kernels "
            f"may round differently."
        )
    return reproduction


def _best_checks(a: RunInfo, b: RunInfo, tolerance: float) -> list[Check]:
    """The best epoch (exact), its monitored value, and why training stopped (exact)."""
    a_epoch = a.best.epoch if a.best else None
    b_epoch = b.best.epoch if b.best else None
    same_epoch = Verdict.IDENTICAL if a_epoch == b_epoch else Verdict.DIFFERS
    same_stop = Verdict.IDENTICAL if a.stopped_by == b.stopped_by else Verdict.DIFFERS
    return [
        Check("best epoch", a_epoch, b_epoch, None, same_epoch),
        compare_numbers(
            f"best: {a.best.monitor if a.best else 'value'}",
            a.best.value if a.best else None,
            b.best.value if b.best else None,
            tolerance,
        ),
        Check(
            "stopped by",
            a.stopped_by.value if a.stopped_by else None,
            b.stopped_by.value if b.stopped_by else None,
            None,
            same_stop,
        ),
    ]


def _keep(rerun: Path, original: _Original) -> Path:
    """Move the rerun beside the run as a run folder of its own, its data folder the real one."""
    target = new_run_in(original.files.path.parent)
    target.rmdir()  # a fresh, unique name; the rerun takes its place
    shutil.move(str(rerun), target)
    files = RunFolder(target)
    info = files.read_info()
    if info.data is not None:
        info.data.folder = str(original.data)
    files.write_info(info)
    return target
