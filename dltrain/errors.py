"""Errors users can act on, each mapped to the exit code DESIGN.md promises.

Messages are one paragraph: what was received, what was expected, how to fix it.
"""

from __future__ import annotations

from enum import IntEnum


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


class TrainingInterrupted(DltrainError):
    """The user stopped training (Ctrl-C); the message says how to resume."""

    kind = "interrupted"
    exit_code = ExitCode.INTERRUPTED


class TrainingFailed(DltrainError):
    """Training ran but did not produce a usable model (for example the loss diverged)."""

    kind = "training failed"
    exit_code = ExitCode.FAILED
