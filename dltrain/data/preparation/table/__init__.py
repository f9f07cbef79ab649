"""Preparing a table (CSV/TSV/Parquet, plus an optional test file) in two streaming passes.

Pass 1 (``scan``) parses every row once (on a prefetch thread, which also spills the parsed
batches for pass 2, ``spill``) to profile the columns, hash rows for duplicates and leakage, and
collect the target (and any split key). Then the plan (``plan``, ``target``) infers the column
kinds and the task and assigns the splits. Pass 2 (``write``) replays the spilled batches, drops
what cleaning drops, writes each split's shards (on a writer thread) and fits the preprocessing
on the training rows only; ``report`` says what was found and done.

Memory holds a few batches plus 5-10 bytes per row (the target's class or value, the split, a
keep flag): row hashes go to bucket files (``HashBuckets``) that duplicate and leakage checks
read one bucket at a time, and random and stratified splits of large sources are drawn a chunk
at a time (``assign_in_chunks``). Time, group and hash splits also keep their per-row keys.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltrain.data.prefetch import use_jemalloc
from dltrain.data.preparation import Prepared
from dltrain.data.preparation.quality import check_quality
from dltrain.data.preparation.table.plan import find_duplicates, infer_kinds, plan_table
from dltrain.data.preparation.table.reading import open_table_source
from dltrain.data.preparation.table.report import build_profile, profile_columns
from dltrain.data.preparation.table.scan import open_hash_buckets, scan_table
from dltrain.data.preparation.table.spill import SPILL_FILE, Spill
from dltrain.data.preparation.table.target import mark_present, resolve_target
from dltrain.data.preparation.table.write import write_table
from dltrain.data.profile import Profile
from dltrain.data.readers.tables import TableFile
from dltrain.recipe.data import ColumnType, DataSpec
from dltrain.tasks import Task


def prepare_table(spec: DataSpec, seed: int, folder: Path, *, strict: bool = False) -> Prepared:
    """Profile, clean, split and store a table; fit its preprocessing on the training split.

    Args:
        spec: the recipe's data section.
        seed: fixes the splits.
        folder: the (temporary) dataset folder the shards go to.
        strict: fail on any profile warning (``--strict``).

    Returns:
        The dataset's description and profile.

    Raises:
        DataError: unreadable files, unknown columns, a bad target, text among numbers, …
        DataQualityError: a check of ``data.checks`` (or ``--strict``) failed.
    """
    use_jemalloc()
    table = open_table_source(spec)
    spill = Spill(folder / SPILL_FILE)
    hashes = open_hash_buckets(table, folder)
    try:
        scan = scan_table(table, hashes, spill)
        plan = plan_table(table, scan, seed)
        scan.target = scan.target[:0]  # plan.y holds the targets now: free the raw ones
        profile = build_profile(table, scan, plan)
        hashes.close()  # done with: free the disk for pass 2
        check_quality(profile, spec, strict=strict)
        description = write_table(table, scan, plan, seed, spill, folder)
    finally:
        spill.close()
        hashes.close()
    profile.dropped_rows = plan.dropped
    profile.notes = plan.notes
    return Prepared(description=description, profile=profile)


@dataclass
class TableInspection:
    """What a table looks like, without preparing it (``dltrain init`` shows and writes it)."""

    table: TableFile
    kinds: dict[str, ColumnType]
    task: Task
    classes: list[str] | None
    profile: Profile
    notes: list[str]


def inspect_table(spec: DataSpec) -> TableInspection:
    """Read a table once: its read options, column kinds, task and profile.

    Args:
        spec: a data section naming the source and its target.

    Returns:
        The source file as read, the column kinds, the task and classes, the profile and
        notes.

    Raises:
        DataError: as ``prepare_table`` would.
    """
    table = open_table_source(spec)
    main = table.main
    with tempfile.TemporaryDirectory(prefix="dltrain-inspect-") as scratch:
        hashes = open_hash_buckets(table, Path(scratch))
        try:
            scan = scan_table(table, hashes)
            kinds = infer_kinds(table, scan)
            target = resolve_target(scan, table)
            duplicates = find_duplicates(scan, mark_present(target.y, target.task))
        finally:
            hashes.close()
    task, classes, y = target.task, target.classes, target.y
    class_counts = None
    if classes is not None:
        counts = np.bincount(y[y >= 0].astype(np.int64), minlength=len(classes))
        class_counts = dict(zip(classes, counts.tolist(), strict=True))
    notes = list(main.csv.notes if main.csv else []) + target.notes
    profile = Profile(
        columns=profile_columns(table, scan, kinds, task),
        rows=int(sum(scan.file_rows)),
        duplicate_rows=len(duplicates),
        class_counts=class_counts,
        notes=notes,
    )
    return TableInspection(main, kinds, task, classes, profile, notes)
