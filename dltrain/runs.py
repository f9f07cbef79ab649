"""Where commands find each other's outputs, and how files that later commands trust get written.

``data/<recipe>/`` holds a prepared dataset, ``runs/<recipe>/<run id>/`` one training run. Run ids
sort by creation time, so the latest run is the last one in name order.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dltrain.errors import RunError

MODEL_FILE = "model.keras"
RECIPE_FILE = "recipe.yaml"
RUN_INFO_FILE = "run.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def data_dir(workdir: Path, name: str) -> Path:
    """The prepared dataset of recipe ``name``."""
    return workdir / "data" / name


def runs_dir(workdir: Path, name: str) -> Path:
    """The folder holding every run of recipe ``name``."""
    return workdir / "runs" / name


def new_run_dir(workdir: Path, name: str) -> Path:
    """Create a fresh, uniquely named run folder and return it."""
    root = runs_dir(workdir, name)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def is_tune_trial(run_dir: Path) -> bool:
    """Whether a run folder is a ``dltrain tune`` trial (its run.json has a ``tune`` entry)."""
    try:
        info = read_json(run_dir / RUN_INFO_FILE)
    except (OSError, ValueError):
        return False  # no readable run.json: not known to be a trial
    return isinstance(info, dict) and "tune" in info


def run_folders(root: Path, include_trials: bool = False) -> tuple[list[Path], int]:
    """The run folders under ``root`` in creation order, and how many tune trials were left out."""
    runs = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    if include_trials:
        return runs, 0
    kept = [p for p in runs if not is_tune_trial(p)]
    return kept, len(runs) - len(kept)


def _trials_note(skipped: int) -> str:
    if not skipped:
        return ""
    return (
        f" {skipped} tune trial run(s) there were left out: a trial is not your latest run; "
        f"name one with --run PATH."
    )


def latest_run(workdir: Path, name: str, *, include_trials: bool = False) -> Path:
    """The newest run of recipe ``name`` that finished with a saved model.

    Tune trials (``dltrain tune`` trains many into the same folder) are skipped unless
    ``include_trials``: "the latest run" means the user's latest ``dltrain train``.

    Raises:
        RunError: the recipe has no finished run.
    """
    root = runs_dir(workdir, name)
    runs, skipped = run_folders(root, include_trials)
    finished = [p for p in runs if (p / MODEL_FILE).is_file()]
    if not finished:
        started = [p for p in runs if (p / RUN_INFO_FILE).is_file()]  # not tune/, lr-finder/
        found = f" ({len(started)} run(s) there, none with a saved model)" if started else ""
        raise RunError(
            f"No finished run of recipe '{name}' under {root}{found}.{_trials_note(skipped)} "
            f"evaluate needs a trained model: run `dltrain train` first, or name a run folder "
            f"with --run PATH."
        )
    return finished[-1]


def latest_unfinished_run(workdir: Path, name: str, *, include_trials: bool = False) -> Path:
    """The newest run of recipe ``name`` that stopped before finishing but left a checkpoint.

    Tune trials are skipped unless ``include_trials`` (a cut-short trial is run again by tune).

    Raises:
        RunError: there is none.
    """
    root = runs_dir(workdir, name)
    runs, _ = run_folders(root, include_trials)
    resumable = [
        p
        for p in runs
        if not (p / MODEL_FILE).is_file() and (p / "checkpoints" / "state.json").is_file()
    ]
    if not resumable:
        raise RunError(
            f"No unfinished run of recipe '{name}' to resume under {root}: every run there either "
            f"finished or stopped before its first epoch ended. Start one with `dltrain train`."
        )
    return resumable[-1]


def resolve_path(given: Path, workdir: Path) -> Path:
    """A run folder given on the command line, read from the working directory.

    Raises:
        RunError: it does not exist.
    """
    path = given if given.is_absolute() else workdir / given
    if not path.is_dir():
        raise RunError(
            f"Run folder {given} does not exist. Expected a folder written by `dltrain train`, "
            f"such as runs/<recipe>/<run id>/."
        )
    return path


def resolve_run(given: Path | None, workdir: Path, name: str) -> Path:
    """The run the user named with ``--run``, or the latest run of the recipe.

    Raises:
        RunError: the named folder does not exist or holds no model.
    """
    if given is None:
        return latest_run(workdir, name)
    path = given if given.is_absolute() else workdir / given
    if not path.is_dir():
        raise RunError(
            f"Run folder {given} does not exist. Expected a folder written by `dltrain train`, "
            f"such as runs/{name}/<run id>/; list them with `ls {runs_dir(workdir, name)}`."
        )
    if not (path / MODEL_FILE).is_file():
        raise RunError(
            f"Run folder {given} holds no {MODEL_FILE}: its training did not finish. Train again "
            f"with `dltrain train`, or pick another run."
        )
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that a crash leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; others may need to read results
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, document: Any) -> None:
    """Write a JSON document atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it into place on success.

    Works for files and folders. The temporary keeps ``path``'s suffix, since some writers
    (Keras's ``model.save``) insist on it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{secrets.token_hex(3)}{path.suffix}")
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            # Swap folders: the old one moves aside first, so at no moment is a half one in place.
            old = path.with_name(f".{path.name}.old-{secrets.token_hex(3)}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
