"""Errors users can act on, each mapped to the exit code DESIGN.md promises.

Messages are one paragraph: what was received, what was expected, how to fix it. Every kind
lives here, so a command's exit code can be read off one file; a module raising one imports it.
"""

from __future__ import annotations

from enum import IntEnum
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
