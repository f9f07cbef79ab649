"""Whether a rerun reproduced a run: its history, its final logs and its weights, within a
tolerance. Pure comparisons of what two run folders hold (numbers and arrays, no TensorFlow);
``training/verify.py`` retrains the run and calls them.

Two numbers agree within ``tolerance`` when ``|a - b| <= tolerance * max(1, |a|, |b|)``: an
absolute difference for values up to 1 (losses, accuracies, weights), a relative one above
(a regression's MSE in dollars squared). Two NaNs agree; a NaN and a number do not.

Example:
    >>> compare_history([{"epoch": 0, "loss": 0.5}], [{"epoch": 0, "loss": 0.5}], 1e-6)[0].verdict
    <Verdict.IDENTICAL: 'identical'>
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

# history.csv columns that measure the machine, not the training: never compared
TIMING_COLUMNS = frozenset({"epoch_seconds"})


class Verdict(StrEnum):
    """How one compared thing came out."""

    IDENTICAL = "identical"  # bit for bit
    WITHIN = "within tolerance"
    DIFFERS = "differs"  # beyond the tolerance: not reproduced
    SKIPPED = "skipped"  # nothing to compare (the original does not record it)


@dataclass(frozen=True)
class Check:
    """One comparison between the original run and its rerun.

    Attributes:
        name: what was compared (``history: val_loss``, ``final: loss``, ``weights``, …).
        original: the original's value (a number, a digest, a count), or None.
        rerun: the rerun's value, or None.
        difference: the largest absolute difference found, where numbers were compared.
        verdict: identical, within tolerance, differs, or skipped.
        detail: where it differed first, or why it was skipped.
    """

    name: str
    original: Any
    rerun: Any
    difference: float | None
    verdict: Verdict
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict is not Verdict.DIFFERS

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "original": _json_number(self.original),
            "rerun": _json_number(self.rerun),
            "difference": _json_number(self.difference),
            "verdict": self.verdict.value,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass
class Reproduction:
    """Every check of a rerun against its original, and the notes that qualify them."""

    tolerance: float
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether nothing differs beyond the tolerance."""
        return all(check.passed for check in self.checks)

    @property
    def differing(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def agree(a: float, b: float, tolerance: float) -> bool:
    """Whether two numbers agree within ``tolerance`` (see the module's docstring)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def _difference(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if a == b:  # equal infinities too
        return 0.0
    return abs(a - b)


def compare_numbers(
    name: str, original: float | None, rerun: float | None, tolerance: float
) -> Check:
    """One number of each run (a final log, a best value)."""
    if original is None and rerun is None:
        return Check(name, None, None, None, Verdict.SKIPPED, "recorded by neither run")
    if original is None or rerun is None:
        return Check(name, original, rerun, None, Verdict.DIFFERS, "recorded by one run only")
    a, b = float(original), float(rerun)
    difference = _difference(a, b)
    if difference == 0.0:
        verdict = Verdict.IDENTICAL
    else:
        verdict = Verdict.WITHIN if agree(a, b, tolerance) else Verdict.DIFFERS
    return Check(name, original, rerun, difference, verdict)


def compare_history(
    original: Sequence[Mapping[str, float]],
    rerun: Sequence[Mapping[str, float]],
    tolerance: float,
) -> list[Check]:
    """Epoch by epoch, each column of history.csv (timings left out).

    Args:
        original: the original run's rows, one per epoch.
        rerun: the rerun's rows.
        tolerance: see the module's docstring.

    Returns:
        A check of the number of epochs, then one per column: its largest difference over the
        epochs both ran, and the first epoch beyond the tolerance.
    """
    checks = [
        Check(
            "history: epochs",
            len(original),
            len(rerun),
            float(abs(len(original) - len(rerun))),
            Verdict.IDENTICAL if len(original) == len(rerun) else Verdict.DIFFERS,
        )
    ]
    columns = list(dict.fromkeys(k for row in [*original, *rerun] for k in row))
    for column in columns:
        if column in TIMING_COLUMNS or column == "epoch":
            continue
        checks.append(_compare_column(column, original, rerun, tolerance))
    return checks


def _compare_column(
    column: str,
    original: Sequence[Mapping[str, float]],
    rerun: Sequence[Mapping[str, float]],
    tolerance: float,
) -> Check:
    name = f"history: {column}"
    pairs = [(a.get(column), b.get(column)) for a, b in zip(original, rerun, strict=False)]
    largest, first_bad, missing = 0.0, None, None
    for epoch, (a, b) in enumerate(pairs, start=1):
        if a is None or b is None:
            if a is not b and missing is None:
                missing = epoch
            continue
        largest = max(largest, _difference(a, b))
        if first_bad is None and not agree(a, b, tolerance):
            first_bad = epoch
    last = pairs[-1] if pairs else (None, None)
    if missing is not None:
        return Check(
            name,
            last[0],
            last[1],
            None,
            Verdict.DIFFERS,
            f"logged by one run only (epoch {missing})",
        )
    if first_bad is not None:
        a, b = pairs[first_bad - 1]
        detail = f"first at epoch {first_bad}: {a!r} vs {b!r}"
        return Check(name, last[0], last[1], largest, Verdict.DIFFERS, detail)
    verdict = Verdict.IDENTICAL if largest == 0.0 else Verdict.WITHIN
    return Check(name, last[0], last[1], largest, verdict)


def compare_finals(
    original: Mapping[str, float], rerun: Mapping[str, float], tolerance: float
) -> list[Check]:
    """run.json's ``final``: the last epoch's logs of each run (timings left out)."""
    keys = [k for k in dict.fromkeys([*original, *rerun]) if k not in TIMING_COLUMNS]
    return [compare_numbers(f"final: {k}", original.get(k), rerun.get(k), tolerance) for k in keys]


def weights_sha256(weights: Sequence[np.ndarray]) -> str:
    """SHA-256 of weights in order, as ``training/multiworker.weights_digest`` takes a model's."""
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def compare_weights(
    original: Sequence[np.ndarray], rerun: Sequence[np.ndarray], tolerance: float
) -> Check:
    """The two models' weights: their digests, and the largest difference between them."""
    a_digest, b_digest = weights_sha256(original), weights_sha256(rerun)
    shapes_a = [np.shape(w) for w in original]
    shapes_b = [np.shape(w) for w in rerun]
    if shapes_a != shapes_b:
        return Check(
            "weights", a_digest, b_digest, None, Verdict.DIFFERS, "the models' shapes differ"
        )
    if a_digest == b_digest:
        return Check("weights", a_digest, b_digest, 0.0, Verdict.IDENTICAL)
    largest, within = 0.0, True
    for a, b in zip(original, rerun, strict=True):
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a64.size == 0:
            continue
        gap = np.abs(a64 - b64)
        gap[np.isnan(a64) & np.isnan(b64)] = 0.0
        largest = max(largest, float(np.nanmax(np.where(np.isnan(gap), np.inf, gap))))
        bound = tolerance * np.maximum(1.0, np.maximum(np.abs(a64), np.abs(b64)))
        within = within and bool(np.all(gap <= bound))
    verdict = Verdict.WITHIN if within else Verdict.DIFFERS
    return Check("weights", a_digest, b_digest, largest, verdict)


def check_recorded_digest(recorded: str | None, saved: str) -> Check:
    """run.json's ``weights_sha256`` against the original's model.keras: exact, no tolerance.

    A mismatch means the model or its record was changed after training wrote them.
    """
    name = "weights digest (run.json)"
    if recorded is None:
        return Check(name, None, saved, None, Verdict.SKIPPED, "run.json records none (older run)")
    verdict = Verdict.IDENTICAL if recorded == saved else Verdict.DIFFERS
    detail = "" if recorded == saved else "model.keras is not the model training recorded"
    return Check(name, recorded, saved, None, verdict, detail)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value
