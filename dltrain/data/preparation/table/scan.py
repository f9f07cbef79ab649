"""Pass 1: parse every row once to profile the columns, hash the rows (for duplicates and
leakage) and collect the target and any split key.

The parsing runs on a prefetch thread, which also spills the parsed batches for pass 2. Memory
holds a few batches plus the per-row target and split keys: row hashes go to bucket files
(``HashBuckets``) that the duplicate and leakage checks read one bucket at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dltrain.data.hashing import (
    HashBuckets,
    combine,
    dictionary_encoded,
    hash_numbers,
    hash_strings,
    mix,
)
from dltrain.data.prefetch import prefetched
from dltrain.data.preparation.table.reading import TableSource, stripped_batches
from dltrain.data.preparation.table.spill import Spill, spilled
from dltrain.data.profile import ColumnScan, identifier_like
from dltrain.data.readers.tables import TableFile
from dltrain.errors import DataError
from dltrain.recipe.data import ColumnSpec, ColumnType, DataSpec, SplitMethod
from dltrain.tasks import MAX_CLASSES


@dataclass
class TableScan:
    """What pass 1 collected."""

    scans: dict[str, ColumnScan]
    file_rows: list[int]
    hashes: HashBuckets  # "row" (features, times and target) and "features" hashes, on disk
    target: np.ndarray  # float64 (numbers, NaN missing) or int16 codes (labels, -1 missing)
    labels: list[str] | None  # label of each code, for text targets
    order: np.ndarray | None = None
    keys: np.ndarray | None = None


def open_hash_buckets(table: TableSource, folder: Path) -> HashBuckets:
    """Bucket files in ``folder`` for the row and feature hashes, sized by the table's bytes."""
    size = sum(file.path.stat().st_size for file in table.files)
    return HashBuckets(folder, ("row", "features"), size)


def scan_table(table: TableSource, hashes: HashBuckets, spill: Spill | None = None) -> TableScan:
    """Read every batch of every file once: profile, hash rows, collect target and split keys.

    Args:
        table: the opened files.
        hashes: where the row and feature hashes go.
        spill: keeps the parsed batches for pass 2 (None: nothing is kept).

    Returns:
        The column scans, rows per file, hashes, target and split keys.

    Raises:
        DataError: text among numbers, a text target among several, no data rows, too many
            classes, a time split column that is not times.
    """
    collector = _Collector(table, hashes)
    for index, columns in prefetched(spilled(stripped_batches(table), spill)):
        collector.add(index, columns)
    return collector.finish()


class _Collector:
    """What pass 1 keeps of each batch, in the order the batches come."""

    def __init__(self, table: TableSource, hashes: HashBuckets) -> None:
        spec = table.spec
        self.table = table
        self.spec = spec
        self.hashes = hashes
        self.markers = table.markers
        self.scans = {
            n: ColumnScan(n, numeric=table.types[n] == pa.float64(), markers=self.markers)
            for n in table.main.columns
        }
        self.text_target = _text_target(table)
        self.file_rows = [0] * len(table.files)
        self.target_parts: list[np.ndarray] = []
        self.order_parts: list[np.ndarray] = []
        self.key_parts: list[np.ndarray] = []
        self.label_index: dict[str, int] = {}
        self.hashed: list[str] | None = None  # the feature columns hashed, chosen at batch 1
        self.times: list[str] = []  # date columns left out of the features, in the row hash

    def add(self, index: int, columns: dict[str, pa.Array]) -> None:
        """Profile, hash and collect one batch of file ``index``."""
        rows = len(next(iter(columns.values())))
        first_row = sum(self.file_rows)
        self.file_rows[index] += rows
        numbers = {
            name: column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            for name, column in columns.items()
            if self.scans[name].numeric
        }
        # Text columns once as distinct values + indices, for profiling, hashing and labels.
        columns = {
            name: column if name in numbers else dictionary_encoded(column)
            for name, column in columns.items()
        }
        for name, column in columns.items():
            self.scans[name].update(column, numbers.get(name))
        self._hash_rows(columns, numbers, rows, first_row)
        self._collect_target(columns, numbers)
        self._collect_split_key(columns, numbers)

    def _hash_rows(
        self,
        columns: dict[str, pa.Array],
        numbers: dict[str, np.ndarray],
        rows: int,
        first_row: int,
    ) -> None:
        targets = self.spec.targets
        if self.hashed is None:  # row numbers and keys would make every row unique: leave them out
            self.hashed = [
                n
                for n in self.table.main.columns
                if n not in targets
                and self.spec.columns.get(n, ColumnSpec()).type
                not in (ColumnType.IGNORE, ColumnType.IDENTIFIER)
                and not identifier_like(self.scans[n])
            ]
            self.times = [
                n
                for n in self.table.main.columns
                if n not in targets and n not in self.hashed and self._holds_times(n)
            ]
        h = np.zeros(rows, np.uint64)
        for name in self.hashed:
            combine(h, _column_hash(columns[name], numbers.get(name)))
        self.hashes.add("features", mix(h), first_row)
        # A row's time tells it apart even where the model never sees it (unique dates look like
        # a key): readings at two different times are two observations, not a duplicate row.
        for name in [*self.times, *targets]:
            combine(h, _column_hash(columns[name], numbers.get(name)))
        self.hashes.add("row", mix(h), first_row)

    def _holds_times(self, name: str) -> bool:
        pinned = self.spec.columns.get(name, ColumnSpec()).type
        if pinned != ColumnType.AUTO:
            return pinned == ColumnType.DATETIME
        scan = self.scans[name]
        return not scan.numeric and scan.looks_like_dates() is not None

    def _collect_target(self, columns: dict[str, pa.Array], numbers: dict[str, np.ndarray]) -> None:
        targets = self.spec.targets
        if self.text_target:
            codes = _label_codes(columns[targets[0]], self.label_index, self.markers, self.spec)
            self.target_parts.append(codes)
        else:
            values = [numbers[t] for t in targets]
            self.target_parts.append(values[0] if len(values) == 1 else np.stack(values, axis=1))

    def _collect_split_key(
        self, columns: dict[str, pa.Array], numbers: dict[str, np.ndarray]
    ) -> None:
        split_column = self.spec.split.column
        if split_column is not None and self.spec.split.method == SplitMethod.TIME:
            numeric = self.scans[split_column].numeric
            self.order_parts.append(
                _time_values(columns[split_column], numeric, split_column, self.table.main)
            )
        elif split_column is not None:
            self.key_parts.append(_column_hash(columns[split_column], numbers.get(split_column)))

    def finish(self) -> TableScan:
        """What was collected, once every batch was added.

        Raises:
            DataError: the table has no data rows.
        """
        total = sum(self.file_rows)
        if total == 0:
            raise DataError(
                f"{self.table.main.path} has a header but no data rows. Expected at least one "
                f"row of data below the header."
            )
        index = self.label_index
        labels = sorted(index, key=index.__getitem__) if self.text_target else None
        return TableScan(
            scans=self.scans,
            file_rows=self.file_rows,
            hashes=self.hashes,
            target=np.concatenate(self.target_parts),
            labels=labels,
            order=np.concatenate(self.order_parts) if self.order_parts else None,
            keys=np.concatenate(self.key_parts) if self.key_parts else None,
        )


def _text_target(table: TableSource) -> bool:
    """Whether the target holds text (labels) rather than numbers.

    Raises:
        DataError: several target columns, one of them text.
    """
    targets = table.spec.targets
    text_target = table.types[targets[0]] == pa.string()
    if text_target and len(targets) > 1:
        raise DataError(
            f"Several target columns ({', '.join(targets)}) are predicted together only as numbers "
            f"(regression), but {targets[0]!r} holds text. Predict one class column at a time."
        )
    return text_target


def _column_hash(column: pa.Array, numbers: np.ndarray | None) -> np.ndarray:
    return hash_numbers(numbers) if numbers is not None else hash_strings(column)


def _label_codes(
    column: pa.Array, index: dict[str, int], markers: list[str], spec: DataSpec
) -> np.ndarray:
    encoded = dictionary_encoded(column)
    lookup = np.empty(len(encoded.dictionary), np.int16)  # MAX_CLASSES fit: 2 bytes a row
    for i, label in enumerate(encoded.dictionary.to_pylist()):
        if label in markers:
            lookup[i] = -1
            continue
        if label not in index:
            if len(index) >= MAX_CLASSES:
                raise DataError(
                    f"The target {spec.targets[0]!r} holds more than {MAX_CLASSES:,} different "
                    f"text values; that is not a set of classes. Pick the column to predict "
                    f"(`data.target`), or declare a numeric target as numeric."
                )
            index[label] = len(index)
        lookup[i] = index[label]
    return lookup[encoded.indices.to_numpy(zero_copy_only=False)]


def _time_values(column: pa.Array, numeric: bool, name: str, table: TableFile) -> np.ndarray:
    if numeric:
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    try:
        if isinstance(column, pa.DictionaryArray):  # each distinct date read once
            parsed = pc.cast(column.dictionary, pa.timestamp("s")).take(column.indices)
        else:
            parsed = pc.cast(column, pa.timestamp("s"))
    except pa.ArrowInvalid:
        raise DataError(
            f"`data.split.column` {name!r} of {table.path} is neither numbers nor dates that read "
            f"as ISO 8601 (such as 2024-01-31 or 2024-01-31T12:00). Convert the column, or split "
            f"another way (`data.split.method`)."
        ) from None
    return parsed.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
