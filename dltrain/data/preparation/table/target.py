"""The target, read from pass 1: the task, the classes (named as the recipe says) and each
row's class index or value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltrain.data.preparation.table.reading import TableSource
from dltrain.data.preparation.table.scan import TableScan
from dltrain.errors import DataError
from dltrain.recipe.data import DataSpec, TargetTransform
from dltrain.tasks import MAX_CLASSES, Task

CHUNK_ROWS = 1 << 20  # rows per step where a per-row array is worked through in chunks


@dataclass
class Target:
    """What the target holds and what is learnt from it."""

    task: Task
    classes: list[str] | None
    y: np.ndarray  # per row: int16 class index (-1 missing) or float32 values (NaN missing)
    notes: list[str]


def resolve_target(scan: TableScan, table: TableSource) -> Target:
    """The task, classes and per-row targets, from what pass 1 collected.

    Args:
        scan: pass 1's findings.
        table: the opened files.

    Returns:
        The task, its classes (None for numbers), each row's target and notes for the report.

    Raises:
        DataError: a target missing in every row, a task the target cannot have, a single
            class, too many classes, class names that do not match, unknown test labels.
    """
    _check_present(scan, table)
    if scan.labels is not None:
        return _text_classes(scan, table)
    return _number_target(scan, table.spec)


def mark_present(y: np.ndarray, task: Task) -> np.ndarray:
    """A mask of the rows whose target is not missing."""
    if task.is_classification:
        return np.asarray(y >= 0)
    return ~np.isnan(y) if y.ndim == 1 else ~np.isnan(y).any(axis=1)


def check_target_transform(spec: DataSpec, task: Task, y: np.ndarray, keep: np.ndarray) -> None:
    """Refuse ``data.target_transform`` where the target cannot take it.

    Args:
        spec: the recipe's data section.
        task: the task the target was read as.
        y: each row's target (values for regression).
        keep: the rows that stay (their target present), every split and a test file included:
            the loss takes the transform of validation targets as well.

    Raises:
        DataError: the target was read as classes, or ``log`` meets a value that is not > 0.
    """
    transform = spec.target_transform
    if transform == TargetTransform.NONE:
        return
    if task != Task.REGRESSION:
        raise DataError(
            f"`data.target_transform` is {transform.value}, which transforms a number to "
            f"regress, but the target {', '.join(spec.targets)} was read as {task.value}. Set "
            f"`data.task: regression` to predict the number, or remove `data.target_transform`."
        )
    values = y.reshape(len(y), -1)
    for index, column in enumerate(spec.targets):
        bad, lowest = 0, np.inf
        for start in range(0, len(values), CHUNK_ROWS):
            part = values[start : start + CHUNK_ROWS, index][keep[start : start + CHUNK_ROWS]]
            bad += int((part <= 0).sum())
            lowest = min(lowest, float(part.min(initial=np.inf)))
        if bad:
            raise DataError(
                f"`data.target_transform` is log, which needs every value of the target "
                f"{column!r} to be > 0, but {bad:,} row(s) hold a value <= 0 (the lowest is "
                f"{lowest:g}). Remove `data.target_transform`, or drop those rows from the source."
            )


def _check_present(scan: TableScan, table: TableSource) -> None:
    for name in table.spec.targets:
        if scan.scans[name].present == 0:
            raise DataError(
                f"The target column {name!r} of {table.main.path} is missing in every row (all "
                f"{scan.scans[name].rows:,} values are empty or a missing-value marker). Expected "
                f"values to learn from; check `data.target` and `data.csv.missing_values`."
            )


def _text_classes(scan: TableScan, table: TableSource) -> Target:
    """A text target: its labels are the classes, sorted."""
    spec, target = table.spec, table.spec.targets[0]
    assert scan.labels is not None
    if spec.task in (Task.REGRESSION, Task.FORECASTING):
        raise DataError(
            f"`data.task` is {spec.task.value} but the target {target!r} holds text "
            f"(e.g. {scan.labels[0]!r}). Predict a numeric column, or drop `data.task` to "
            f"classify."
        )
    notes: list[str] = []
    codes = scan.target
    labels = list(scan.labels)
    if table.has_test:
        codes, labels, note = _align_test_labels(
            codes, labels, scan.file_rows[0], table.files[1].path
        )
        if note:
            notes.append(note)
    classes, y = _used_classes(codes, labels)
    task = spec.task or (Task.BINARY if len(classes) == 2 else Task.MULTICLASS)
    if len(classes) < 2:
        raise DataError(
            f"The target {target!r} has a single class ({classes[0]!r}); there is nothing "
            f"to tell apart. Check `data.target`."
        )
    if task == Task.BINARY and len(classes) != 2:
        raise DataError(
            f"`data.task` is binary but the target {target!r} has {len(classes)} classes "
            f"({', '.join(classes[:8])}). Use task multiclass, or drop `data.task`."
        )
    return Target(task, _named(classes, spec), y, notes)


def _used_classes(codes: np.ndarray, labels: list[str]) -> tuple[list[str], np.ndarray]:
    """The labels some row holds, sorted, and ``codes`` renumbered to them (in place)."""
    seen = np.zeros(len(labels) + 1, bool)  # the last slot catches -1 (missing)
    for start in range(0, len(codes), CHUNK_ROWS):
        seen[codes[start : start + CHUNK_ROWS]] = True
    used = sorted(np.flatnonzero(seen[:-1]).tolist(), key=lambda c: labels[c])
    classes = [labels[c] for c in used]
    remap = np.full(len(labels) + 1, -1, np.int16)
    for new, old in enumerate(used):
        remap[old] = new
    y = codes  # remapped in place a chunk at a time: no second array of every row's class
    for start in range(0, len(y), CHUNK_ROWS):
        part = y[start : start + CHUNK_ROWS]
        part[:] = remap[part]  # -1 (missing) stays -1 via the last slot
    return classes, y


def _number_target(scan: TableScan, spec: DataSpec) -> Target:
    """A numeric target: values to regress, or classes when few whole numbers (or the recipe)
    say so."""
    task, notes = _number_task(scan, spec)
    values = scan.target
    if task.is_classification:
        return _number_classes(values, task, spec, notes)
    if task == Task.FORECASTING:
        raise DataError("Forecasting needs the `data.series` section.")
    return Target(task, None, values.astype(np.float32), notes)


def _number_task(scan: TableScan, spec: DataSpec) -> tuple[Task, list[str]]:
    targets = spec.targets
    first = scan.scans[targets[0]]
    notes: list[str] = []
    task: Task
    if spec.task is not None:
        task = spec.task
    elif len(targets) > 1:
        task = Task.REGRESSION
    elif first.distinct is not None and first.distinct <= 2:
        task = Task.BINARY
    elif first.distinct is not None and first.integral and first.distinct <= 20:
        task = Task.MULTICLASS
        notes.append(
            f"target {targets[0]!r} holds {first.distinct} whole numbers: read as classes "
            f"(set `data.task: regression` to predict the number)"
        )
    else:
        task = Task.REGRESSION
    return task, notes


def _number_classes(values: np.ndarray, task: Task, spec: DataSpec, notes: list[str]) -> Target:
    target = spec.targets[0]
    if values.ndim > 1:
        raise DataError("Several target columns can only be predicted as numbers (regression).")
    present = values[~np.isnan(values)]
    uniques = np.unique(present)
    if len(uniques) > MAX_CLASSES:
        raise DataError(
            f"`data.task` is {task.value} but the target {target!r} has "
            f"{len(uniques):,} different values. Use task regression."
        )
    y = np.full(len(values), -1, np.int16)  # MAX_CLASSES fit: 2 bytes a row
    ok = ~np.isnan(values)
    y[ok] = np.searchsorted(uniques, values[ok])
    classes = [f"{v:g}" for v in uniques]
    if task == Task.BINARY and len(classes) != 2:
        raise DataError(
            f"`data.task` is binary but the target {target!r} has {len(classes)} values. "
            f"Use task multiclass or regression."
        )
    return Target(task, _named(classes, spec), y, notes)


def _named(classes: list[str], spec: DataSpec) -> list[str]:
    if spec.classes is None:
        return classes
    if len(spec.classes) != len(classes):
        raise DataError(
            f"`data.classes` names {len(spec.classes)} classes but the target has {len(classes)} "
            f"({', '.join(classes[:10])}). Name every class, in the order listed."
        )
    return list(spec.classes)


def _align_test_labels(
    codes: np.ndarray, labels: list[str], main_rows: int, test_path: Path
) -> tuple[np.ndarray, list[str], str | None]:
    """Map the test file's labels onto the source's, forgiving a trailing dot (Adult's
    ``>50K.``) and stray spaces; refuse labels the source never has."""
    train_codes = set(np.unique(codes[:main_rows]).tolist()) - {-1}
    test_codes = set(np.unique(codes[main_rows:]).tolist()) - {-1}
    known = {labels[c]: c for c in train_codes}
    unknown = sorted(test_codes - train_codes)
    if not unknown:
        return codes, labels, None
    lookup = np.arange(len(labels) + 1, dtype=np.int16)
    lookup[-1] = -1
    fixed, still = [], []
    for code in unknown:
        cleaned = labels[code].rstrip(".").strip()
        if cleaned in known:
            lookup[code] = known[cleaned]
            fixed.append(labels[code])
        else:
            still.append(labels[code])
    if still:
        raise DataError(
            f"The test file {test_path} has target value(s) {', '.join(map(repr, still[:5]))} that "
            f"the source never has (it has {', '.join(map(repr, sorted(known)[:8]))}). Expected "
            f"the same classes in both files; fix the labels in the test file."
        )
    mapped = lookup[np.where(codes < 0, len(labels), codes)]
    note = (
        f"test labels {', '.join(map(repr, fixed[:4]))} read as "
        f"{', '.join(repr(labels[int(lookup[labels.index(f)])]) for f in fixed[:4])} "
        f"(a trailing '.' removed)"
    )
    return mapped, labels, note
