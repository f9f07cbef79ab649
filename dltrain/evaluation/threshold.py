"""Choosing a binary classifier's decision threshold on the validation split, and the
threshold an evaluation applies (stored in threshold.json, or chosen now).

Objectives, as users type them:

- ``f1``: the threshold with the highest F1 of the positive class;
- ``accuracy`` / ``balanced_accuracy``: the highest accuracy / balanced accuracy (Youden's J);
- ``precision@recall=0.9``: the highest precision among thresholds keeping recall >= 0.9;
- ``recall@precision=0.95``: the highest recall among thresholds keeping precision >= 0.95.

A threshold t predicts the positive class when P(positive) >= t.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from dltrain.atomic import read_json, write_json_atomic
from dltrain.errors import RunError, ThresholdUnreachable, UsageError
from dltrain.runs import THRESHOLD_FILE, RunFolder

THRESHOLD_SCHEMA_VERSION = 1
_PLAIN = ("f1", "accuracy", "balanced_accuracy")
_CONSTRAINED = re.compile(
    r"^(?P<goal>precision|recall)@(?P<given>precision|recall)\s*=\s*(?P<bound>[0-9]*\.?[0-9]+)$"
)
EXAMPLES = "f1, accuracy, balanced_accuracy, precision@recall=0.9, recall@precision=0.95"
DEFAULT_SOURCE = "default"  # a binary classifier evaluated at 0.5, no threshold stored


@dataclass(frozen=True)
class ThresholdObjective:
    """What the threshold should maximise, and under which constraint."""

    text: str
    goal: str  # f1 | accuracy | balanced_accuracy | precision | recall
    constraint: tuple[str, float] | None = None  # ("recall", 0.9): keep recall >= 0.9


def parse_objective(text: str) -> ThresholdObjective:
    """Parse ``--optimize-threshold``.

    Raises:
        UsageError: not one of the forms above.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned in _PLAIN:
        return ThresholdObjective(cleaned, cleaned)
    match = _CONSTRAINED.match(cleaned)
    if match and match["goal"] != match["given"]:
        bound = float(match["bound"])
        if 0 < bound <= 1:
            return ThresholdObjective(cleaned, match["goal"], (match["given"], bound))
    raise UsageError(
        f"--optimize-threshold got {text!r}, which is not an objective dltrain knows. Expected "
        f"one of: {EXAMPLES} (bounds between 0 and 1). Example: --optimize-threshold "
        f"precision@recall=0.9 picks the most precise threshold that still finds 90 % of the "
        f"positives."
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold ``choose_threshold`` picked, and what it achieved where it was chosen."""

    value: float
    objective: str
    achieved: dict[str, float]  # precision, recall, f1, accuracy, … on the split it was chosen on
    split: str
    num_examples: int

    def to_json(self) -> dict[str, Any]:
        """The threshold.json document that stores the choice."""
        return {
            "schema_version": THRESHOLD_SCHEMA_VERSION,
            "kind": "binary_decision",
            "threshold": self.value,
            "objective": self.objective,
            "chosen_on": self.split,
            "num_examples": self.num_examples,
            "achieved": self.achieved,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def _candidates(y_true: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Counts at every distinct score used as the threshold, highest threshold first."""
    thresholds, inverse = np.unique(scores, return_inverse=True)
    positive = y_true.astype(bool)
    pos = np.bincount(inverse, weights=positive, minlength=len(thresholds))[::-1]
    neg = np.bincount(inverse, weights=~positive, minlength=len(thresholds))[::-1]
    true_pos, false_pos = np.cumsum(pos), np.cumsum(neg)
    total_pos, total_neg = positive.sum(), (~positive).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(true_pos + false_pos > 0, true_pos / (true_pos + false_pos), 1.0)
        recall = true_pos / total_pos if total_pos else np.zeros_like(true_pos)
        specificity = (total_neg - false_pos) / total_neg if total_neg else np.ones_like(true_pos)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    accuracy = (true_pos + total_neg - false_pos) / len(y_true)
    return {
        "threshold": thresholds[::-1],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": accuracy,
        "balanced_accuracy": (recall + specificity) / 2,
    }


def choose_threshold(
    y_true: np.ndarray, scores: np.ndarray, objective: ThresholdObjective, split: str
) -> ThresholdChoice:
    """The threshold on ``scores`` = P(positive) that best meets ``objective``.

    Candidates are the distinct scores themselves. Among equally good thresholds the highest
    wins: it flags the fewest examples for the same score.

    Raises:
        ThresholdUnreachable: no threshold satisfies the constraint (exit code 1).
    """
    table = _candidates(np.asarray(y_true), np.asarray(scores, dtype=np.float64))
    allowed = np.ones(len(table["threshold"]), dtype=bool)
    if objective.constraint is not None:
        name, bound = objective.constraint
        allowed = table[name] >= bound - 1e-12
        if not allowed.any():
            raise ThresholdUnreachable(
                f"No decision threshold gives {name} >= {bound:g} on the {split} split "
                f"({len(y_true):,} examples): the best {name} at any threshold is "
                f"{table[name].max():.4f}. Relax the bound, or improve the model first; no "
                f"threshold was stored."
            )
    goal = np.where(allowed, table[objective.goal], -np.inf)
    best = int(np.argmax(goal))  # the first maximum is the highest threshold
    achieved = {
        key: float(table[key][best])
        for key in ("precision", "recall", "f1", "accuracy", "balanced_accuracy")
    }
    return ThresholdChoice(
        value=float(table["threshold"][best]),
        objective=objective.text,
        achieved=achieved,
        split=split,
        num_examples=len(y_true),
    )


class StoredThreshold(BaseModel):
    """threshold.json: a threshold, and how and where it was chosen.

    A decision threshold (``kind`` binary_decision) has an objective and what it achieved; an
    anomaly threshold (``kind`` anomaly) the percentile of validation errors it sits at. The
    fields are in file order for both kinds, so ``to_json`` writes what was read.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = THRESHOLD_SCHEMA_VERSION
    kind: str | None = None  # binary_decision or anomaly
    threshold: float
    objective: str | None = None  # decision thresholds: the objective, e.g. f1
    percentile: float | None = None  # anomaly thresholds: the percentile of validation errors
    chosen_on: str | None = None  # the split it was chosen on
    num_examples: int | None = None
    achieved: dict[str, float] | None = None  # decision thresholds: metrics where chosen
    created: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The threshold.json document: the fields that were given, in file order."""
        return self.model_dump(exclude_unset=True)


def read_stored_threshold(run_dir: Path) -> StoredThreshold | None:
    """The run's stored threshold, typed; None when it has none.

    Raises:
        RunError: the file exists but is unreadable.
    """
    path = RunFolder(run_dir).threshold
    if not path.is_file():
        return None
    try:
        document = read_json(path)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    try:
        return StoredThreshold.model_validate(document)
    except ValidationError as exc:
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _unreadable(RunFolder(run_dir).threshold, reason) from None


def write_threshold(run_dir: Path, threshold: StoredThreshold) -> None:
    """Store a threshold in the run's threshold.json, atomically."""
    write_json_atomic(RunFolder(run_dir).threshold, threshold.to_json())


def _unreadable(path: Path, reason: object) -> RunError:
    return RunError(
        f"{path} is unreadable ({reason}). Delete it and choose the threshold again with "
        f"`dltrain evaluate --optimize-threshold f1`."
    )


@dataclass(frozen=True)
class ThresholdInUse:
    """The threshold an evaluation applies, and whether it chose it now (then it is stored)."""

    stored: StoredThreshold
    new: bool = False  # chosen by this evaluation; False: read from the run

    @property
    def source(self) -> str:
        """Where the threshold came from, as the metrics document says it."""
        return "chosen now" if self.new else THRESHOLD_FILE


@dataclass(frozen=True)
class ThresholdSummary:
    """The metrics document's ``threshold``: the value applied and where it came from."""

    value: float
    source: str  # "default", "chosen now" or threshold.json
    objective: str | None = None
    chosen_on: str | None = None
    achieved: dict[str, float] | None = None
    anomaly: bool = False  # an autoencoder's anomaly threshold, not a decision threshold

    @property
    def is_default(self) -> bool:
        """Whether no threshold was chosen (a binary classifier at 0.5): nothing to report."""
        return self.source == DEFAULT_SOURCE

    def to_json(self) -> dict[str, float | str | dict[str, float] | None]:
        """The summary as the metrics document holds it (``achieved``: chosen decisions only)."""
        document: dict[str, float | str | dict[str, float] | None] = {
            "value": self.value,
            "source": self.source,
            "objective": self.objective,
            "chosen_on": self.chosen_on,
        }
        if not self.anomaly and not self.is_default:
            document["achieved"] = self.achieved
        return document


def summarize_threshold(task: str, in_use: ThresholdInUse | None) -> ThresholdSummary | None:
    """What the metrics document says of the threshold a ``task`` model was evaluated at.

    Args:
        task: the run's task; binary classifiers and autoencoders have thresholds.
        in_use: the threshold applied; None for a binary classifier means the default 0.5.

    Returns:
        The summary, or None when the task has no threshold.
    """
    if task == "binary":
        if in_use is None:
            return ThresholdSummary(0.5, DEFAULT_SOURCE)
        stored = in_use.stored
        return ThresholdSummary(
            stored.threshold, in_use.source, stored.objective, stored.chosen_on, stored.achieved
        )
    if task == "reconstruction" and in_use is not None:
        stored = in_use.stored
        percentile = "?" if stored.percentile is None else stored.percentile
        return ThresholdSummary(
            stored.threshold,
            in_use.source,
            objective=f"percentile {percentile} of reconstruction errors",
            chosen_on=stored.chosen_on,
            anomaly=True,
        )
    return None
