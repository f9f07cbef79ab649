"""What a prepared table reports: its profile, the manifest's target and what cleaning did, in
numbers."""

from __future__ import annotations

import numpy as np

from dltrain.data.preparation.table.plan import UNUSED, TablePlan, count_leaking_rows
from dltrain.data.preparation.table.reading import TableSource
from dltrain.data.preparation.table.scan import TableScan
from dltrain.data.preparation.table.target import CHUNK_ROWS
from dltrain.data.profile import ColumnProfile, Profile, column_profile
from dltrain.data.splits import TRAIN
from dltrain.data.transforms import class_weights
from dltrain.manifest import (
    CategoricalColumn,
    ClassTarget,
    Cleaning,
    FilledColumn,
    NumericColumn,
    NumericTarget,
    Split,
    TargetTransformFit,
)
from dltrain.recipe.data import ColumnType, DataSpec, Missing, Outliers, TargetTransform
from dltrain.tasks import Task


def build_profile(table: TableSource, scan: TableScan, plan: TablePlan) -> Profile:
    """The table's profile: its columns, rows, duplicates, class balance and leakage."""
    class_counts = None
    if plan.classes is not None:
        counts = count_classes(plan.y, plan.keep, len(plan.classes))
        class_counts = dict(zip(plan.classes, counts.tolist(), strict=True))
    return Profile(
        columns=profile_columns(table, scan, plan.kinds, plan.task),
        rows=int(sum(scan.file_rows)),
        duplicate_rows=plan.duplicate_rows,
        class_counts=class_counts,
        leaking_rows=count_leaking_rows(scan.hashes, plan.splits),
        notes=plan.notes,
        dropped_rows=plan.dropped,
    )


def profile_columns(
    table: TableSource, scan: TableScan, kinds: dict[str, ColumnType], task: Task
) -> list[ColumnProfile]:
    """Each column's profile, in the table's order, with its kind and role."""
    spec = table.spec
    columns: list[ColumnProfile] = []
    for name in table.main.columns:
        if name in spec.targets:
            kind = ColumnType.CATEGORICAL if task.is_classification else ColumnType.NUMERIC
            role = "target"
        else:
            kind = kinds[name]
            role = "ignored" if kind in UNUSED else "feature"
        columns.append(column_profile(scan.scans[name], kind, role, spec.max_categories))
    return columns


def count_classes(y: np.ndarray, mask: np.ndarray, num_classes: int) -> np.ndarray:
    """How many rows of each class ``mask`` selects, a chunk at a time (no per-row copies)."""
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(y), CHUNK_ROWS):
        part = y[start : start + CHUNK_ROWS][mask[start : start + CHUNK_ROWS]]
        counts += np.bincount(part, minlength=num_classes)[:num_classes]
    return counts


def describe_target(
    plan: TablePlan,
    targets: list[str],
    splits: dict[str, Split],
    transform: TargetTransform = TargetTransform.NONE,
) -> ClassTarget | NumericTarget:
    """The manifest's ``target``: classes and their weights, or the training values' statistics.

    Args:
        plan: the plan pass 2 carried out.
        targets: the target column(s).
        splits: the splits as stored (the training class counts).
        transform: ``data.target_transform`` (numbers only; plan_table checked the values).
    """
    if plan.classes is not None:
        counts = splits["train"].class_counts
        assert counts is not None  # the writer counts classes: it was given their number
        return ClassTarget(
            column=targets[0],
            classes=plan.classes,
            num_classes=len(plan.classes),
            class_weights=class_weights(counts),
        )
    train_y = plan.y[plan.splits == TRAIN]  # regression only: classes need just the counts
    values = train_y.reshape(len(train_y), -1).astype(np.float64)
    return NumericTarget(
        columns=targets,
        mean=values.mean(axis=0).tolist(),
        std=[float(s) or 1.0 for s in values.std(axis=0)],
        # The range seen in training: `model.clip_to_target_range` keeps predictions inside it.
        min=values.min(axis=0).tolist(),
        max=values.max(axis=0).tolist(),
        transform=fit_target_transform(values, transform),
    )


def fit_target_transform(
    values: np.ndarray, transform: TargetTransform
) -> TargetTransformFit | None:
    """The transformed training targets' mean and deviation per column; None for ``none``.

    Example:
        >>> fit_target_transform(np.array([[1.0], [np.e**2]]), TargetTransform.LOG).mean
        [1.0]
    """
    if transform == TargetTransform.NONE:
        return None
    logs = np.log(values)  # plan_table refused any value <= 0
    return TargetTransformFit(
        name=transform,
        mean=logs.mean(axis=0).tolist(),
        std=[float(s) or 1.0 for s in logs.std(axis=0)],
    )


def describe_cleaning(
    plan: TablePlan,
    numeric: list[NumericColumn],
    categorical: list[CategoricalColumn],
    spec: DataSpec,
    scan: TableScan,
) -> Cleaning:
    """What cleaning did, in numbers, for the manifest and the printed report.

    Args:
        plan: the plan pass 2 carried out (its dropped rows and notes).
        numeric: the fitted numeric preprocessing, one entry per column.
        categorical: the fitted categorical preprocessing, one entry per column.
        spec: the recipe's data section.
        scan: pass 1's findings (each column's missing count).
    """
    filled = []
    for entry in numeric:
        column = entry.column
        # A derived column has no scan: its missing values are counted on the training split.
        missing = scan.scans[column].missing if column in scan.scans else entry.train_missing
        clipped = entry.outliers != Outliers.NONE
        if missing or clipped:
            filled.append(
                FilledColumn(
                    column=column,
                    missing=missing,
                    missing_in_train=entry.train_missing,
                    strategy=entry.missing,
                    fill=entry.fill,
                    clip=[entry.low, entry.high] if clipped else None,
                )
            )
    for category in categorical:
        missing = scan.scans[category.column].missing
        if missing:
            own = category.missing == Missing.CONSTANT
            filled.append(
                FilledColumn(
                    column=category.column,
                    missing=missing,
                    missing_in_train=category.train_missing,
                    strategy=category.missing,
                    fill="its own category" if own else category.most_frequent,
                )
            )
    return Cleaning(
        dropped_rows=plan.dropped,
        duplicates=spec.clean.duplicates.value,
        filled=filled,
        notes=plan.notes,
    )
