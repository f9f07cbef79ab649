"""Errors users can act on, each mapped to the exit code DESIGN.md promises.

Messages are one paragraph: what was received, what was expected, how to fix it. Every kind
lives here, so a command's exit code can be read off one file; a module raising one imports it.
"""

from __future__ import annotations

import errno
import os
import re
from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the job ran but did not meet its bar (gate, divergence)
    BAD_INPUT = 2  # recipe, data, arguments
    INTERRUPTED = 130


class DltrainError(Exception):
    """Base of every error dltrain reports to a user without a traceback."""

    kind = "error"
    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RecipeError(DltrainError):
    kind = "recipe error"


class DataError(DltrainError):
    kind = "data error"


class RunError(DltrainError):
    kind = "run error"


class UsageError(DltrainError):
    kind = "usage error"


class FileSystemError(DltrainError):
    """The machine refused a file dltrain needs: read-only, full, no permission.

    Not a bug and not bad data: exit 2 with the path, the cause and the fix. Make one with
    ``file_system_error``.
    """

    kind = "file system error"

    def __init__(self, message: str, path: Path | str | None, errno_: int) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno_


class OutOfMemory(DltrainError):
    """The model or a batch of the recipe does not fit in the memory this machine has."""

    kind = "out of memory"


# The faults of the machine a user can fix: errno → (cause, fix).
_FILE_SYSTEM_FAULTS: dict[int, tuple[str, str]] = {
    errno.EROFS: (
        "the file system is read-only",
        "Run dltrain in a writable folder (it writes data/ and runs/ under the working "
        "directory), or remount the file system read-write",
    ),
    errno.EACCES: (
        "permission denied",
        "Make it writable by your user (ls -ld shows its owner and mode; chmod u+w or chown "
        "fixes it), or run dltrain in a folder you own",
    ),
    errno.EPERM: (
        "the operation is not permitted",
        "Make it writable by your user (ls -ld shows its owner and mode), or run dltrain in a "
        "folder you own",
    ),
    errno.ENOSPC: (
        "no space left on the device",
        "Free space on that disk (df -h shows it) or move the project to a larger one, then run "
        "the command again",
    ),
    errno.EDQUOT: (
        "your disk quota is used up",
        "Free space within your quota (quota -s shows it), then run the command again",
    ),
    errno.EFBIG: (
        "the file is larger than the file system allows",
        "Move the project to a file system that takes large files",
    ),
    errno.EIO: (
        "the device reported an input/output error",
        "Check the disk (dmesg shows device errors) or move the project to another one",
    ),
}
# Faults that only a write can meet: the message may say "write" rather than "use".
_WRITE_FAULTS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def os_error_of(exc: BaseException) -> OSError | None:
    """``exc`` as the operating system's error, if it is one.

    TensorFlow reports a failed file write (TensorBoard, SavedModel, ``tf.io``) as its own error,
    ``RESOURCE_EXHAUSTED`` for a full disk, with the system's words in the message; that is read
    back into an ``OSError`` here, so a full disk is never taken for a full memory.
    """
    if isinstance(exc, OSError):
        return exc
    if not type(exc).__module__.startswith("tensorflow"):
        return None
    text = str(exc)
    for code in _FILE_SYSTEM_FAULTS:
        words = os.strerror(code)
        if words in text:
            # TensorFlow writes "<path>; No space left on device"
            named = re.search(rf"(\S+); {re.escape(words)}", text)
            return OSError(code, words, named[1] if named else None)
    return None


def file_system_error(
    exc: OSError, path: Path | str | None = None, *, writing: bool = False
) -> FileSystemError | None:
    """The user's paragraph for a fault of the machine, or None for an OSError that is not one.

    Args:
        exc: the error the operating system raised.
        path: what dltrain was writing; default: the file the error names.
        writing: dltrain knows it was writing (an atomic writer), not reading.

    Returns:
        A ``FileSystemError`` naming the path, the cause and the fix; None when ``exc`` is not
        a read-only, full, forbidden or failing disk (a missing file, say, is the caller's to
        explain).

    Example:
        >>> error = file_system_error(OSError(errno.ENOSPC, "No space left"), "runs/x")
        >>> error.message.startswith("Cannot write runs/x: no space left on the device")
        True
    """
    fault = _FILE_SYSTEM_FAULTS.get(exc.errno or 0)
    if fault is None:
        return None
    cause, fix = fault
    where = path if path is not None else exc.filename
    verb = "write" if writing or exc.errno in _WRITE_FAULTS else "use"
    what = f" {where}" if where is not None else " a file"
    name = errno.errorcode.get(exc.errno or 0, "?")
    kept = " Nothing half-written was kept." if writing else ""
    return FileSystemError(
        f"Cannot {verb}{what}: {cause} (errno {exc.errno}, {name}).{kept} {fix}.",
        where,
        exc.errno or 0,
    )


class TrainingInterrupted(DltrainError):
    """The user stopped training (Ctrl-C); the message says how to resume."""

    kind = "interrupted"
    exit_code = ExitCode.INTERRUPTED


class TrainingFailed(DltrainError):
    """Training ran but did not produce a usable model (for example the loss diverged)."""

    kind = "training failed"
    exit_code = ExitCode.FAILED


class ObjectiveNotLogged(RecipeError):
    """The tune objective is not among the metrics training logs; every trial would fail."""


class ConversionError(DataError):
    """A value in a column read as numbers is not a number; the caller names the rows."""

    def __init__(self, column: str, value: str) -> None:
        super().__init__(f"Column {column!r} holds the non-numeric value {value!r}.")
        self.column = column
        self.value = value


class DataQualityError(DltrainError):
    """The data read fine but failed the recipe's checks (or --strict)."""

    kind = "data check failed"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, profile: dict[str, Any]) -> None:
        super().__init__(message)
        self.profile = profile  # profile.json's content, for the report


class GatesFailed(DltrainError):
    """The evaluation ran, and the model did not meet its bar."""

    kind = "gate failed"
    exit_code = ExitCode.FAILED


class ThresholdUnreachable(DltrainError):
    """The threshold objective's constraint holds at no threshold: the model cannot meet it."""

    kind = "threshold not found"
    exit_code = ExitCode.FAILED


class ExportError(DltrainError):
    """A converter cannot export the model, or is not installed."""

    kind = "export error"


class ExportMismatch(DltrainError):
    """The exported model ran but does not give the Keras model's outputs."""

    kind = "export check failed"
    exit_code = ExitCode.FAILED


class NoTrialCompleted(DltrainError):
    """The search ran but no trial finished training (all failed or were pruned)."""

    kind = "tune failed"
    exit_code = ExitCode.FAILED
