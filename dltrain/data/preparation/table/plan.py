"""What prepare decides between the passes: each column's kind, the target, the rows kept
(missing targets and duplicates dropped) and each row's split.

Random and stratified splits of large sources are drawn a chunk at a time
(``assign_in_chunks``); time, group and hash splits use the per-row keys pass 1 kept. Duplicates
and leakage are found in the hash bucket files one bucket at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dltrain.data.hashing import HashBuckets
from dltrain.data.preparation.table.reading import TableSource, find_text_in_numbers
from dltrain.data.preparation.table.scan import TableScan
from dltrain.data.preparation.table.target import (
    Target,
    check_target_transform,
    mark_present,
    resolve_target,
)
from dltrain.data.profile import infer_type
from dltrain.data.splits import (
    SKLEARN_LIMIT,
    TEST,
    SplitRequest,
    assign_in_chunks,
    assign_splits,
    first_occurrences,
    leaking_counts,
    resolve_method,
)
from dltrain.errors import DataError
from dltrain.recipe.data import ColumnSpec, ColumnType, Duplicates, SplitMethod
from dltrain.tasks import Task

UNUSED = (ColumnType.IDENTIFIER, ColumnType.IGNORE, ColumnType.DATETIME)


@dataclass
class TablePlan:
    """What prepare decided after pass 1."""

    kinds: dict[str, ColumnType]
    task: Task
    classes: list[str] | None
    y: np.ndarray  # per row: int16 class index or float32 targets; rows to drop hold anything
    keep: np.ndarray
    splits: np.ndarray  # per row: TRAIN/VALIDATION/TEST, -1 when dropped
    text_kind: str | None  # the single text column when the features are one text
    notes: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    duplicate_rows: int = 0


def plan_table(table: TableSource, scan: TableScan, seed: int) -> TablePlan:
    """Decide the column kinds, the task and targets, the rows kept and each row's split.

    Args:
        table: the opened files.
        scan: pass 1's findings.
        seed: fixes the splits.

    Returns:
        The plan pass 2 carries out.

    Raises:
        DataError: a bad target, no feature left, free text beside other features, a split
            that cannot be made.
    """
    main, spec = table.main, table.spec
    notes: list[str] = list(main.csv.notes if main.csv else [])
    kinds = infer_kinds(table, scan)
    target = resolve_target(scan, table)
    notes += target.notes
    keep = mark_present(target.y, target.task)
    dropped = {"missing target": int((~keep).sum())} if (~keep).any() else {}
    duplicates = find_duplicates(scan, keep)
    num_duplicates = len(duplicates)
    if spec.clean.duplicates == Duplicates.DROP and num_duplicates:
        # The source's own test file is the benchmark's, not ours to thin: only counted.
        duplicates = duplicates[duplicates < scan.file_rows[0]]
        keep[duplicates] = False
        dropped["duplicate"] = len(duplicates)
    check_target_transform(spec, target.task, target.y, keep)
    splits = _assign(table, scan, seed, target, keep)
    text_kind = _text_kind(table, kinds)
    notes += _unused_notes(kinds)
    return TablePlan(
        kinds=kinds,
        task=target.task,
        classes=target.classes,
        y=target.y,
        keep=keep,
        splits=splits,
        text_kind=text_kind,
        notes=notes,
        dropped=dropped,
        duplicate_rows=num_duplicates,
    )


def infer_kinds(table: TableSource, scan: TableScan) -> dict[str, ColumnType]:
    """Each feature column's kind: the recipe's, else inferred from its scan.

    Raises:
        DataError: a column of numbers with a few words among them.
    """
    main, spec = table.main, table.spec
    kinds: dict[str, ColumnType] = {}
    for name in main.columns:
        if name in spec.targets:
            continue
        column = scan.scans[name]
        pinned = spec.columns.get(name, ColumnSpec()).type
        if pinned == ColumnType.AUTO and not column.numeric and column.numeric_share() >= 0.9:
            raise find_text_in_numbers(main, name, spec)  # numbers with a few words among them
        kind = infer_type(column, pinned)
        if kind == ColumnType.NUMERIC and not column.numeric:
            raise DataError(
                f"Column {name!r} is declared numeric but was read as text; this is a bug."
            )
        kinds[name] = kind
    return kinds


def _text_kind(table: TableSource, kinds: dict[str, ColumnType]) -> str | None:
    """The single text column when it is the only feature, else None.

    Raises:
        DataError: no feature at all, or free text beside other features.
    """
    path = table.main.path
    features = [n for n, k in kinds.items() if k not in UNUSED]
    if not features:
        raise DataError(
            f"{path} has no column left to learn from: every column but the target is an "
            f"identifier, a date or ignored "
            f"({', '.join(f'{n}: {k.value}' for n, k in kinds.items())}). "
            f"Set a column's type in `data.columns` (numeric or categorical) to use it."
        )
    text_columns = [n for n in features if kinds[n] == ColumnType.TEXT]
    text_kind = text_columns[0] if features == text_columns and len(text_columns) == 1 else None
    if text_columns and text_kind is None:
        raise DataError(
            f"Column(s) {', '.join(map(repr, text_columns))} of {path} hold free text next to "
            f"other features; dltrain learns from text alone or from tables without free text. "
            f"Set `data.columns.<name>.type` to categorical or ignore, or keep only the text "
            f"column (ignore the others)."
        )
    return text_kind


def _unused_notes(kinds: dict[str, ColumnType]) -> list[str]:
    notes = []
    for name, kind in kinds.items():
        if kind == ColumnType.DATETIME:
            notes.append(
                f"{name!r} holds dates: not used as a feature (it is not a forecasting task)"
            )
        elif kind == ColumnType.IDENTIFIER:
            notes.append(f"{name!r} looks like a row identifier: not used as a feature")
    return notes


def find_duplicates(scan: TableScan, keep: np.ndarray) -> np.ndarray:
    """The rows (sorted indices) repeating an earlier kept row of the same file, found bucket by
    bucket (files are compared among themselves only; a training row repeated in the test file
    is leakage, counted separately)."""
    ends = np.cumsum(scan.file_rows)
    found: list[np.ndarray] = []
    for records in scan.hashes.buckets("row"):
        rows = records["row"].astype(np.int64)
        candidates = keep[rows]
        rows, hashes = rows[candidates], records["hash"][candidates]
        file_of = np.searchsorted(ends, rows, side="right")
        for index in range(len(ends)):
            mine = file_of == index
            found.append(rows[mine][~first_occurrences(hashes[mine])])
    return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)


def count_leaking_rows(hashes: HashBuckets, splits: np.ndarray) -> dict[str, int]:
    """Validation and test rows with a training row's features, bucket by bucket."""
    total: dict[str, int] = {}
    for records in hashes.buckets("features"):
        row_splits = splits[records["row"].astype(np.int64)]
        used = row_splits >= 0
        for name, count in leaking_counts(records["hash"][used], row_splits[used]).items():
            total[name] = total.get(name, 0) + count
    return total


def _assign(
    table: TableSource, scan: TableScan, seed: int, target: Target, keep: np.ndarray
) -> np.ndarray:
    """Each row's split: the pool of the source's kept rows split as the recipe says, the test
    file's kept rows to test.

    Raises:
        DataError: a time split without its column, a test file without usable rows, or the
            pool cannot be split (see ``split_indices``).
    """
    spec = table.spec
    splits = np.full(len(keep), -1, np.int8)
    main_rows = scan.file_rows[0]
    task = target.task
    method = resolve_method(spec.split, classification=task.is_classification)
    if method == SplitMethod.TIME and scan.order is None:
        raise DataError(
            "`data.split.method: time` needs `data.split.column`, the column that orders the rows "
            "in time."
        )
    stratified = method == SplitMethod.STRATIFIED and task.is_classification
    request = SplitRequest(
        spec=spec.split,
        seed=seed,
        method=method,
        has_test=table.has_test,
        source=str(spec.source),
        labels=target.y[:main_rows] if stratified else None,
        class_names=target.classes,
    )
    if method in (SplitMethod.RANDOM, SplitMethod.STRATIFIED) and main_rows > SKLEARN_LIMIT:
        # Large sources: no index of the pool (8 bytes a row), a chunk at a time instead.
        assign_in_chunks(keep[:main_rows], splits[:main_rows], request)
    else:
        _assign_pool(scan, request, keep, splits)
    if table.has_test:
        test_rows = np.flatnonzero(keep[main_rows:]) + main_rows
        if len(test_rows) == 0:
            raise DataError(
                f"The test file {table.files[1].path} has no usable rows (every row lacks the "
                f"target)."
            )
        splits[test_rows] = TEST
    return splits


def _assign_pool(
    scan: TableScan, request: SplitRequest, keep: np.ndarray, splits: np.ndarray
) -> None:
    """Splits through an index of the pooled rows: small sources (scikit-learn's draws, as
    prepare has always made them), and time, group and hash splits."""
    pool = np.flatnonzero(keep[: scan.file_rows[0]])
    splits[pool] = assign_splits(
        len(pool),
        replace(
            request,
            labels=request.labels[pool] if request.labels is not None else None,
            order=scan.order[pool] if scan.order is not None else None,
            keys=scan.keys[pool] if scan.keys is not None else None,
        ),
    )
