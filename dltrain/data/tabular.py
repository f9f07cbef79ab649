"""Preparing a table (CSV/TSV/Parquet, plus an optional test file) in two streaming passes.

Pass 1 parses every row once (on a prefetch thread, which also spills the parsed batches for
pass 2) to profile the columns, infer their kinds and the task, hash rows for duplicates and
leakage, and collect the target (and any split key). Then the splits are assigned. Pass 2 replays
the spilled batches, drops what cleaning drops, writes each split's shards (on a writer thread)
and fits the preprocessing on the training rows only.

Memory holds a few batches plus 5-10 bytes per row (the target's class or value, the split, a
keep flag): row hashes go to bucket files (``HashBuckets``) that duplicate and leakage checks
read one bucket at a time, and random and stratified splits of large sources are drawn a chunk
at a time (``assign_in_chunks``). Time, group and hash splits also keep their per-row keys.

What is stored are the source's own values (numbers as float32 with NaN for missing, everything
else as text): imputation, clipping, scaling and vocabularies are applied by the model's first
layers (models/io.py), so the saved model takes raw rows.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc  # noqa: F401  (pa.ipc)

from dltrain.data.derived import check_derived, derive_numpy
from dltrain.data.hashing import (
    HashBuckets,
    combine,
    dictionary_encoded,
    hash_numbers,
    hash_strings,
    mix,
)
from dltrain.data.profile import (
    ColumnProfile,
    ColumnScan,
    Profile,
    column_profile,
    identifier_like,
    infer_type,
)
from dltrain.data.splits import (
    SKLEARN_LIMIT,
    SPLIT_NAMES,
    TEST,
    TRAIN,
    SplitRequest,
    assign_in_chunks,
    assign_splits,
    first_occurrences,
    leaking_counts,
    resolve_method,
)
from dltrain.data.store import ShardWriter
from dltrain.data.tables import (
    ConversionError,
    TableFile,
    is_number,
    open_table,
    prefetched,
    use_jemalloc,
)
from dltrain.data.transforms import CategoryFit, NumericFit, class_weights
from dltrain.errors import DataError, DltrainError, ExitCode
from dltrain.recipe.data import (
    ColumnSpec,
    ColumnType,
    DataFormat,
    DataSpec,
    Duplicates,
    Missing,
    SplitMethod,
)
from dltrain.tasks import Task

MAX_CLASSES = 1_000
CHUNK_ROWS = 1 << 20  # rows per step where a per-row array is worked through in chunks
SPILL_BUDGET = 64 << 20  # bytes of parsed rows kept in memory between the two passes
SPILL_FILE = ".pass1.arrow"
UNUSED = (ColumnType.IDENTIFIER, ColumnType.IGNORE, ColumnType.DATETIME)


class DataQualityError(DltrainError):
    """The data read fine but failed the recipe's checks (or --strict): exit 1."""

    kind = "data check failed"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, profile: dict[str, Any]) -> None:
        super().__init__(message)
        self.profile = profile  # profile.json's content, for the report


@dataclass
class TableOutcome:
    """Everything a prepared table adds to the manifest, plus its profile."""

    fields: dict[str, Any]
    profile: Profile
    files: list[Path]


@dataclass
class _Scan:
    """What pass 1 collected."""

    scans: dict[str, ColumnScan]
    file_rows: list[int]
    hashes: HashBuckets  # "row" (features and target) and "features" hashes, on disk
    target: np.ndarray  # float64 (numbers, NaN missing) or int16 codes (labels, -1 missing)
    labels: list[str] | None  # label of each code, for text targets
    order: np.ndarray | None = None
    keys: np.ndarray | None = None


@dataclass
class _Plan:
    """What prepare decided after pass 1."""

    kinds: dict[str, ColumnType]
    task: Task
    classes: list[str] | None
    y: np.ndarray  # per row: int64 class index or float32 targets; rows to drop hold anything
    keep: np.ndarray
    splits: np.ndarray  # per row: TRAIN/VALIDATION/TEST, -1 when dropped
    text_kind: str | None  # the single text column when the features are one text
    notes: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    duplicate_rows: int = 0


class _Spill:
    """Pass 1's parsed batches, replayed in pass 2 instead of parsing the text again.

    Held in memory up to ``budget`` bytes; beyond that every batch goes to an uncompressed Arrow
    file (written at ~1 GB/s, read back a batch at a time), so memory stays flat for any size.
    """

    def __init__(self, path: Path, budget: int = SPILL_BUDGET) -> None:
        self.path = path
        self.budget = budget
        self.held: list[tuple[int, pa.RecordBatch]] = []
        self.files: list[int] = []  # file index of each spilled batch
        self.bytes = 0
        self._sink: Any = None
        self._writer: Any = None

    def add(self, index: int, columns: dict[str, pa.Array]) -> None:
        batch = pa.RecordBatch.from_pydict(columns)
        if self._writer is None and self.bytes + batch.nbytes <= self.budget:
            self.held.append((index, batch))
            self.bytes += batch.nbytes
            return
        if self._writer is None:
            self._sink = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_file(self._sink, batch.schema)
            for held_index, held in self.held:
                self._write(held_index, held)
            self.held = []
        self._write(index, batch)

    def _write(self, index: int, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.files.append(index)

    def replay(self) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        if self._writer is None:
            for index, batch in self.held:
                yield index, dict(zip(batch.schema.names, batch.columns, strict=True))
            return
        self._writer.close()
        self._sink.close()
        self._writer = None
        with pa.OSFile(str(self.path), "rb") as source:
            reader = pa.ipc.open_file(source)
            for i, index in enumerate(self.files):
                batch = reader.get_batch(i)
                yield index, dict(zip(batch.schema.names, batch.columns, strict=True))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        self.held = []
        self.path.unlink(missing_ok=True)


def open_sources(spec: DataSpec) -> list[TableFile]:
    """The source table and, when the recipe names one, its own test file.

    Raises:
        DataError: a file is missing, unreadable or has other columns than the source.
    """
    main = open_table(spec.source, spec.format, spec.csv)
    if spec.test_source is None:
        return [main]
    path = spec.test_source.path.expanduser()
    if not path.is_absolute():
        path = (spec.source.parent / path).resolve()
    if not path.is_file():
        raise DataError(
            f"The test file {path} named by `data.test_source` does not exist. Relative paths are "
            f"read from the folder of `data.source` ({spec.source.parent}); fix the path."
        )
    if main.csv is not None:
        csv_spec = spec.csv.model_copy(
            update={
                "delimiter": main.csv.delimiter,
                "column_names": main.columns,
                "header": main.csv.header,
                "quoting": main.csv.quoting,
            }
        )
        skip = spec.test_source.skip_rows
        try:
            test = open_table(
                path, DataFormat.CSV, csv_spec, spec.csv.skip_rows if skip is None else skip
            )
        except DataError as exc:
            raise DataError(
                f"{exc.message} (The test file is read like the source: same delimiter and "
                f"columns; `data.test_source.skip_rows` skips a junk first line.)"
            ) from None
    else:
        test = open_table(path, DataFormat.PARQUET, spec.csv)
        if test.columns != main.columns:
            raise DataError(
                f"The test file {path} has columns {test.columns}, the source {main.columns}. "
                f"Expected the same columns in the same order."
            )
    return [main, test]


def check_columns(spec: DataSpec, columns: list[str], source: Path) -> None:
    """Every column the recipe names must exist in the table.

    Raises:
        DataError: naming the unknown column, the closest real one and the columns there are.
    """
    named: list[tuple[str, str]] = [(t, "data.target") for t in spec.targets]
    # `data.columns` may also set how a derived column is cleaned and scaled.
    named += [(c, f"data.columns.{c}") for c in spec.columns if c not in spec.derived]
    if spec.split.column:
        named.append((spec.split.column, "data.split.column"))
    if spec.series is not None:
        if spec.series.time_column:
            named.append((spec.series.time_column, "data.series.time_column"))
        named += [(c, "data.series.features") for c in spec.series.features or []]
    for name, key in named:
        if name not in columns:
            guess = difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
            hint = f" Did you mean {guess[0]!r}?" if guess else ""
            raise DataError(
                f"`{key}` names the column {name!r}, which {source} does not have.{hint} Its "
                f"columns are: {', '.join(columns)}. Fix the name in the recipe (a file without a "
                f"header row has columns column_1, column_2, … unless `data.csv.column_names` "
                f"names them)."
            )
    if not spec.targets:
        raise DataError(
            f"The recipe does not say which column of {source} to predict. Set `data.target` to "
            f"one of: {', '.join(columns)} (or run `dltrain init {source} --target COLUMN`)."
        )


def read_types(table: TableFile, spec: DataSpec) -> dict[str, pa.DataType]:
    """How pass 1 reads each column: numbers where pyarrow (or the recipe) says so, else text."""
    types: dict[str, pa.DataType] = {}
    for name in table.columns:
        pinned = spec.columns.get(name, ColumnSpec()).type
        if pinned == ColumnType.NUMERIC:
            types[name] = pa.float64()
        elif pinned != ColumnType.AUTO:
            types[name] = pa.string()
        else:
            guessed = table.guessed.get(name, pa.string())
            types[name] = pa.float64() if guessed == pa.float64() else pa.string()
    return types


def prepare_table(spec: DataSpec, seed: int, folder: Path, *, strict: bool = False) -> TableOutcome:
    """Profile, clean, split and store a table; fit its preprocessing on the training split.

    Args:
        spec: the recipe's data section.
        seed: fixes the splits.
        folder: the (temporary) dataset folder the shards go to.
        strict: fail on any profile warning (``--strict``).

    Raises:
        DataError: unreadable files, unknown columns, a bad target, text among numbers, …
        DataQualityError: a check of ``data.checks`` (or ``--strict``) failed.
    """
    use_jemalloc()
    files = open_sources(spec)
    main = files[0]
    check_columns(spec, main.columns, spec.source)
    types = read_types(main, spec)
    spill = _Spill(folder / SPILL_FILE)
    hashes = _hash_buckets(files, folder)
    try:
        scan = _scan(files, types, spec, hashes, spill)
        plan = _plan(files, types, scan, spec, seed)
        scan.target = scan.target[:0]  # plan.y holds the targets now: free the raw ones
        profile = _profile(scan, plan, spec, main)
        hashes.close()  # done with: free the disk for pass 2
        breaches = profile.breaches(spec.checks, strict=strict)
        if breaches:
            raise DataQualityError(
                f"{spec.source} failed {len(breaches)} data check(s): {'; '.join(breaches)}. "
                f"Fix the data, relax `data.checks` in the recipe, or run without --strict.",
                profile.to_json(),
            )
        fields = _write(files, types, scan, plan, spec, seed, folder, spill)
    finally:
        spill.close()
        hashes.close()
    profile.dropped_rows = plan.dropped
    profile.notes = plan.notes
    return TableOutcome(fields=fields, profile=profile, files=[f.path for f in files])


# --- pass 1 -----------------------------------------------------------------------------------


def _hash_buckets(files: list[TableFile], folder: Path) -> HashBuckets:
    size = sum(table.path.stat().st_size for table in files)
    return HashBuckets(folder, ("row", "features"), size)


def _strip(
    batch: pa.RecordBatch, types: dict[str, pa.DataType], null_as: str
) -> dict[str, pa.Array]:
    """Text columns trimmed, and their nulls (Parquet's missing text) as a missing marker, so
    profiling, cleaning and the vocabularies count them as missing like a CSV's empty cells."""
    columns = {}
    for name in batch.schema.names:
        column = batch.column(name)
        if types[name] == pa.string():
            if column.null_count:
                column = column.fill_null(null_as)
            if _needs_trim(column):
                column = pc.utf8_trim_whitespace(column)
        columns[name] = column
    return columns


# ASCII whitespace, plus every byte >= 0x80: a value may start or end with a Unicode space
_MAY_BE_SPACE = np.zeros(256, bool)
_MAY_BE_SPACE[[9, 10, 11, 12, 13, 32]] = True
_MAY_BE_SPACE[0x80:] = True


def _needs_trim(column: pa.Array) -> bool:
    """Whether any value starts or ends with whitespace: looks at two bytes per value, where
    trimming every value (a copy of the column) costs ~5x the whole check."""
    if not isinstance(column, pa.StringArray) or len(column) == 0:
        return True
    _, offsets_buffer, data_buffer = column.buffers()
    if data_buffer is None:
        return False
    offsets = np.frombuffer(offsets_buffer, np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(data_buffer, np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    nonempty = ends > starts
    if not nonempty.any():
        return False
    first = data[starts[nonempty]]
    last = data[ends[nonempty] - 1]
    return bool(_MAY_BE_SPACE[first].any() or _MAY_BE_SPACE[last].any())


def stripped_batches(
    files: list[TableFile], types: dict[str, pa.DataType], spec: DataSpec
) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    """(file index, stripped columns) for every batch of every file, with conversion errors
    turned into messages that name the rows."""
    for index, table in enumerate(files):
        markers = table.missing_markers(spec.csv)
        null_as = "" if "" in markers or not markers else markers[0]
        try:
            for batch in table.batches(types):
                yield index, _strip(batch, types, null_as)
        except ConversionError as exc:
            raise _text_in_numbers(table, exc.column, spec) from None


def _text_in_numbers(table: TableFile, column: str, spec: DataSpec) -> DataError:
    """Find the rows where a numeric column holds text (error path: one more read)."""
    markers = set(table.missing_markers(spec.csv))
    types = dict.fromkeys(table.columns, pa.string())
    found: list[str] = []
    total = 0
    row = 0
    for batch in table.batches(types):
        values = pc.utf8_trim_whitespace(batch.column(column)).to_pylist()
        for value in values:
            if value not in markers and not is_number(value):
                total += 1
                if len(found) < 5:
                    found.append(f"row {row + 1} (line {table.line_of(row)}): {value!r}")
            row += 1
    shown = "; ".join(found)
    return DataError(
        f"Column {column!r} of {table.path} is numeric but {total:,} value(s) are text: {shown}. "
        f"Expected numbers or a missing-value marker ({', '.join(map(repr, sorted(markers)[:6]))}"
        f"…). "
        f"Fix those rows, add the marker to `data.csv.missing_values`, or declare the column "
        f"categorical with `data.columns.{column}.type: categorical`."
    )


def _scan(
    files: list[TableFile],
    types: dict[str, pa.DataType],
    spec: DataSpec,
    hashes: HashBuckets,
    spill: _Spill | None = None,
) -> _Scan:
    main = files[0]
    markers = main.missing_markers(spec.csv)
    targets = spec.targets
    scans = {
        n: ColumnScan(n, numeric=types[n] == pa.float64(), markers=markers) for n in main.columns
    }
    target_parts: list[np.ndarray] = []
    order_parts: list[np.ndarray] = []
    key_parts: list[np.ndarray] = []
    file_rows = [0] * len(files)
    label_index: dict[str, int] = {}
    hashed: list[str] | None = None
    text_target = types[targets[0]] == pa.string()
    if text_target and len(targets) > 1:
        raise DataError(
            f"Several target columns ({', '.join(targets)}) are predicted together only as numbers "
            f"(regression), but {targets[0]!r} holds text. Predict one class column at a time."
        )
    split_column = spec.split.column
    for index, columns in prefetched(_spilled(stripped_batches(files, types, spec), spill)):
        rows = len(next(iter(columns.values())))
        first_row = sum(file_rows)
        file_rows[index] += rows
        numbers = {
            name: column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            for name, column in columns.items()
            if scans[name].numeric
        }
        # Text columns once as distinct values + indices, for profiling, hashing and labels.
        columns = {
            name: column if name in numbers else dictionary_encoded(column)
            for name, column in columns.items()
        }
        for name, column in columns.items():
            scans[name].update(column, numbers.get(name))
        if hashed is None:  # row numbers and keys would make every row unique: leave them out
            hashed = [
                n
                for n in main.columns
                if n not in targets
                and spec.columns.get(n, ColumnSpec()).type
                not in (ColumnType.IGNORE, ColumnType.IDENTIFIER)
                and not identifier_like(scans[n])
            ]
        h = np.zeros(rows, np.uint64)
        for name in hashed:
            combine(h, _column_hash(columns[name], numbers.get(name)))
        hashes.add("features", mix(h), first_row)
        for name in targets:
            combine(h, _column_hash(columns[name], numbers.get(name)))
        hashes.add("row", mix(h), first_row)
        if text_target:
            target_parts.append(_label_codes(columns[targets[0]], label_index, markers, spec))
        else:
            values = [numbers[t] for t in targets]
            target_parts.append(values[0] if len(values) == 1 else np.stack(values, axis=1))
        if split_column is not None and spec.split.method == SplitMethod.TIME:
            order_parts.append(
                _time_values(columns[split_column], scans[split_column].numeric, split_column, main)
            )
        elif split_column is not None:
            key_parts.append(_column_hash(columns[split_column], numbers.get(split_column)))
    total = sum(file_rows)
    if total == 0:
        raise DataError(
            f"{main.path} has a header but no data rows. Expected at least one row of data "
            f"below the header."
        )
    labels = sorted(label_index, key=label_index.__getitem__) if text_target else None
    return _Scan(
        scans=scans,
        file_rows=file_rows,
        hashes=hashes,
        target=np.concatenate(target_parts),
        labels=labels,
        order=np.concatenate(order_parts) if order_parts else None,
        keys=np.concatenate(key_parts) if key_parts else None,
    )


def _spilled(
    batches: Iterator[tuple[int, dict[str, pa.Array]]], spill: _Spill | None
) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    """``batches``, each also kept for pass 2 (on the prefetch thread, beside the parsing)."""
    for index, columns in batches:
        if spill is not None:
            spill.add(index, columns)
        yield index, columns


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


# --- decisions --------------------------------------------------------------------------------


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

    Raises:
        DataError: as ``prepare_table`` would.
    """
    files = open_sources(spec)
    main = files[0]
    check_columns(spec, main.columns, spec.source)
    types = read_types(main, spec)
    with tempfile.TemporaryDirectory(prefix="dltrain-inspect-") as scratch:
        hashes = _hash_buckets(files, Path(scratch))
        try:
            scan = _scan(files, types, spec, hashes)
            kinds = _kinds(main, scan, spec)
            task, classes, y, notes = _target(scan, spec, files)
            duplicates = _duplicates(scan, _present(y, task))
        finally:
            hashes.close()
    columns = []
    for name in main.columns:
        if name in spec.targets:
            kind = ColumnType.CATEGORICAL if task.is_classification else ColumnType.NUMERIC
            columns.append(column_profile(scan.scans[name], kind, "target", spec.max_categories))
        else:
            role = "ignored" if kinds[name] in UNUSED else "feature"
            columns.append(column_profile(scan.scans[name], kinds[name], role, spec.max_categories))
    class_counts = None
    if classes is not None:
        counts = np.bincount(y[y >= 0].astype(np.int64), minlength=len(classes))
        class_counts = dict(zip(classes, counts.tolist(), strict=True))
    notes = list(main.csv.notes if main.csv else []) + notes
    profile = Profile(
        columns=columns,
        rows=int(sum(scan.file_rows)),
        duplicate_rows=len(duplicates),
        class_counts=class_counts,
        notes=notes,
    )
    return TableInspection(main, kinds, task, classes, profile, notes)


def _kinds(main: TableFile, scan: _Scan, spec: DataSpec) -> dict[str, ColumnType]:
    kinds: dict[str, ColumnType] = {}
    for name in main.columns:
        if name in spec.targets:
            continue
        column = scan.scans[name]
        pinned = spec.columns.get(name, ColumnSpec()).type
        if pinned == ColumnType.AUTO and not column.numeric and column.numeric_share() >= 0.9:
            raise _text_in_numbers(main, name, spec)  # numbers with a few words among them
        kind = infer_type(column, pinned)
        if kind == ColumnType.NUMERIC and not column.numeric:
            raise DataError(
                f"Column {name!r} is declared numeric but was read as text; this is a bug."
            )
        kinds[name] = kind
    return kinds


def _plan(
    files: list[TableFile], types: dict[str, pa.DataType], scan: _Scan, spec: DataSpec, seed: int
) -> _Plan:
    main = files[0]
    notes: list[str] = list(main.csv.notes if main.csv else [])
    kinds = _kinds(main, scan, spec)
    task, classes, y, label_notes = _target(scan, spec, files)
    notes += label_notes
    keep = _present(y, task)
    dropped = {"missing target": int((~keep).sum())} if (~keep).any() else {}
    duplicates = _duplicates(scan, keep)
    duplicate_rows = len(duplicates)
    if spec.clean.duplicates == Duplicates.DROP and duplicate_rows:
        # The source's own test file is the benchmark's, not ours to thin: only counted.
        duplicates = duplicates[duplicates < scan.file_rows[0]]
        keep[duplicates] = False
        dropped["duplicate"] = len(duplicates)
    splits = _assign(scan, spec, seed, task, classes, y, keep, files)
    features = [n for n, k in kinds.items() if k not in UNUSED]
    if not features:
        raise DataError(
            f"{main.path} has no column left to learn from: every column but the target is an "
            f"identifier, a date or ignored "
            f"({', '.join(f'{n}: {k.value}' for n, k in kinds.items())}). "
            f"Set a column's type in `data.columns` (numeric or categorical) to use it."
        )
    text_columns = [n for n in features if kinds[n] == ColumnType.TEXT]
    text_kind = text_columns[0] if features == text_columns and len(text_columns) == 1 else None
    if text_columns and text_kind is None:
        raise DataError(
            f"Column(s) {', '.join(map(repr, text_columns))} of {main.path} hold free text next to "
            f"other features; dltrain learns from text alone or from tables without free text. "
            f"Set `data.columns.<name>.type` to categorical or ignore, or keep only the text "
            f"column (ignore the others)."
        )
    for name, kind in kinds.items():
        if kind == ColumnType.DATETIME:
            notes.append(
                f"{name!r} holds dates: not used as a feature (it is not a forecasting task)"
            )
        elif kind == ColumnType.IDENTIFIER:
            notes.append(f"{name!r} looks like a row identifier: not used as a feature")
    return _Plan(
        kinds=kinds,
        task=task,
        classes=classes,
        y=y,
        keep=keep,
        splits=splits,
        text_kind=text_kind,
        notes=notes,
        dropped=dropped,
        duplicate_rows=duplicate_rows,
    )


def _target(
    scan: _Scan, spec: DataSpec, files: list[TableFile]
) -> tuple[Task, list[str] | None, np.ndarray, list[str]]:
    targets = spec.targets
    notes: list[str] = []
    first = scan.scans[targets[0]]
    task: Task
    for name in targets:
        if scan.scans[name].present == 0:
            raise DataError(
                f"The target column {name!r} of {files[0].path} is missing in every row (all "
                f"{scan.scans[name].rows:,} values are empty or a missing-value marker). Expected "
                f"values to learn from; check `data.target` and `data.csv.missing_values`."
            )
    if scan.labels is not None:  # a text target: classes
        if spec.task in (Task.REGRESSION, Task.FORECASTING):
            raise DataError(
                f"`data.task` is {spec.task.value} but the target {targets[0]!r} holds text "
                f"(e.g. {scan.labels[0]!r}). Predict a numeric column, or drop `data.task` to "
                f"classify."
            )
        codes = scan.target
        labels = list(scan.labels)
        if len(scan.file_rows) > 1:
            codes, labels, note = _align_test_labels(
                codes, labels, scan.file_rows[0], files[1].path
            )
            if note:
                notes.append(note)
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
        task = spec.task or (Task.BINARY if len(classes) == 2 else Task.MULTICLASS)
        if len(classes) < 2:
            raise DataError(
                f"The target {targets[0]!r} has a single class ({classes[0]!r}); there is nothing "
                f"to tell apart. Check `data.target`."
            )
        if task == Task.BINARY and len(classes) != 2:
            raise DataError(
                f"`data.task` is binary but the target {targets[0]!r} has {len(classes)} classes "
                f"({', '.join(classes[:8])}). Use task multiclass, or drop `data.task`."
            )
        return task, _named(classes, spec), y, notes
    values = scan.target
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
    if task.is_classification:
        if values.ndim > 1:
            raise DataError("Several target columns can only be predicted as numbers (regression).")
        present = values[~np.isnan(values)]
        uniques = np.unique(present)
        if len(uniques) > MAX_CLASSES:
            raise DataError(
                f"`data.task` is {task.value} but the target {targets[0]!r} has "
                f"{len(uniques):,} different values. Use task regression."
            )
        y = np.full(len(values), -1, np.int16)  # MAX_CLASSES fit: 2 bytes a row
        ok = ~np.isnan(values)
        y[ok] = np.searchsorted(uniques, values[ok])
        classes = [f"{v:g}" for v in uniques]
        if task == Task.BINARY and len(classes) != 2:
            raise DataError(
                f"`data.task` is binary but the target {targets[0]!r} has {len(classes)} values. "
                f"Use task multiclass or regression."
            )
        return task, _named(classes, spec), y, notes
    if task == Task.FORECASTING:
        raise DataError("Forecasting needs the `data.series` section.")
    return task, None, values.astype(np.float32), notes


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


def _present(y: np.ndarray, task: Task) -> np.ndarray:
    if task.is_classification:
        return np.asarray(y >= 0)
    return ~np.isnan(y) if y.ndim == 1 else ~np.isnan(y).any(axis=1)


def _duplicates(scan: _Scan, keep: np.ndarray) -> np.ndarray:
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


def _assign(
    scan: _Scan,
    spec: DataSpec,
    seed: int,
    task: Task,
    classes: list[str] | None,
    y: np.ndarray,
    keep: np.ndarray,
    files: list[TableFile],
) -> np.ndarray:
    splits = np.full(len(keep), -1, np.int8)
    main_rows = scan.file_rows[0]
    has_test = len(files) > 1
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
        has_test=has_test,
        source=str(spec.source),
        labels=y[:main_rows] if stratified else None,
        class_names=classes,
    )
    if method in (SplitMethod.RANDOM, SplitMethod.STRATIFIED) and main_rows > SKLEARN_LIMIT:
        # Large sources: no index of the pool (8 bytes a row), a chunk at a time instead.
        assign_in_chunks(keep[:main_rows], splits[:main_rows], request)
    else:
        _assign_pool(scan, request, keep, splits)
    if has_test:
        test_rows = np.flatnonzero(keep[main_rows:]) + main_rows
        if len(test_rows) == 0:
            raise DataError(
                f"The test file {files[1].path} has no usable rows (every row lacks the target)."
            )
        splits[test_rows] = TEST
    return splits


def _assign_pool(scan: _Scan, request: SplitRequest, keep: np.ndarray, splits: np.ndarray) -> None:
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


def class_counts_of(y: np.ndarray, mask: np.ndarray, num_classes: int) -> np.ndarray:
    """How many rows of each class ``mask`` selects, a chunk at a time (no per-row copies)."""
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(y), CHUNK_ROWS):
        part = y[start : start + CHUNK_ROWS][mask[start : start + CHUNK_ROWS]]
        counts += np.bincount(part, minlength=num_classes)[:num_classes]
    return counts


def _leaking_rows(hashes: HashBuckets, splits: np.ndarray) -> dict[str, int]:
    """Validation and test rows with a training row's features, bucket by bucket."""
    total: dict[str, int] = {}
    for records in hashes.buckets("features"):
        row_splits = splits[records["row"].astype(np.int64)]
        used = row_splits >= 0
        for name, count in leaking_counts(records["hash"][used], row_splits[used]).items():
            total[name] = total.get(name, 0) + count
    return total


def _profile(scan: _Scan, plan: _Plan, spec: DataSpec, main: TableFile) -> Profile:
    columns: list[ColumnProfile] = []
    for name in main.columns:
        if name in spec.targets:
            kind = ColumnType.CATEGORICAL if plan.task.is_classification else ColumnType.NUMERIC
            role = "target"
        else:
            kind = plan.kinds[name]
            role = "ignored" if kind in UNUSED else "feature"
        columns.append(column_profile(scan.scans[name], kind, role, spec.max_categories))
    class_counts = None
    if plan.classes is not None:
        counts = class_counts_of(plan.y, plan.keep, len(plan.classes))
        class_counts = dict(zip(plan.classes, counts.tolist(), strict=True))
    return Profile(
        columns=columns,
        rows=int(sum(scan.file_rows)),
        duplicate_rows=plan.duplicate_rows,
        class_counts=class_counts,
        leaking_rows=_leaking_rows(scan.hashes, plan.splits),
        notes=plan.notes,
        dropped_rows=plan.dropped,
    )


# --- pass 2 -----------------------------------------------------------------------------------


def _strategy(spec: DataSpec, name: str, kind: ColumnType) -> tuple[Missing, Any]:
    column = spec.columns.get(name, ColumnSpec())
    strategy = column.missing
    if strategy == Missing.AUTO:
        strategy = (
            spec.clean.numeric_missing
            if kind == ColumnType.NUMERIC
            else spec.clean.categorical_missing
        )
    allowed = (
        (Missing.MEAN, Missing.MEDIAN, Missing.MOST_FREQUENT, Missing.CONSTANT, Missing.DROP_ROW)
        if kind == ColumnType.NUMERIC
        else (Missing.MOST_FREQUENT, Missing.CONSTANT, Missing.DROP_ROW)
    )
    if strategy not in allowed:
        raise DataError(
            f"Missing-value strategy {strategy.value!r} does not apply to the {kind.value} column "
            f"{name!r}. Expected one of {', '.join(a.value for a in allowed)} (ffill, bfill and "
            f"interpolate are for time series)."
        )
    if (
        kind == ColumnType.NUMERIC
        and strategy == Missing.CONSTANT
        and isinstance(column.fill_value, str)
    ):
        raise DataError(
            f"`data.columns.{name}.fill_value` is {column.fill_value!r} but {name!r} is numeric. "
            f"Give a number."
        )
    return strategy, column.fill_value


def _derived_strategy(spec: DataSpec, name: str) -> tuple[Missing, Any]:
    """A derived column's missing-value fill: a row cannot be dropped after it was stored.

    Raises:
        DataError: `drop_row` was asked for a derived column.
    """
    strategy, constant = _strategy(spec, name, ColumnType.NUMERIC)
    if strategy == Missing.DROP_ROW and name not in spec.columns:
        return Missing.MEDIAN, constant  # the recipe-wide default drops rows: fill instead
    if strategy == Missing.DROP_ROW:
        raise DataError(
            f"`data.columns.{name}.missing` is drop_row, but {name!r} is derived: its value is "
            f"missing when an input is missing or a division is by zero, and it is filled, not "
            f"dropped. Use median, mean, most_frequent or constant, or set drop_row on the "
            f"source columns it reads."
        )
    return strategy, constant


def _write(
    files: list[TableFile],
    types: dict[str, pa.DataType],
    scan: _Scan,
    plan: _Plan,
    spec: DataSpec,
    seed: int,
    folder: Path,
    spill: _Spill,
) -> dict[str, Any]:
    main = files[0]
    targets = spec.targets
    markers = main.missing_markers(spec.csv)
    stored = [n for n in main.columns if n not in targets]
    if plan.text_kind is not None:
        stored = [plan.text_kind]
    features = [n for n in stored if plan.kinds[n] not in UNUSED]
    numeric = [n for n in features if plan.kinds[n] == ColumnType.NUMERIC]
    categorical = [n for n in features if plan.kinds[n] == ColumnType.CATEGORICAL]
    strategies = {n: _strategy(spec, n, plan.kinds[n]) for n in numeric + categorical}
    drop_row = [n for n in numeric + categorical if strategies[n][0] == Missing.DROP_ROW]
    if spec.derived and plan.text_kind is not None:
        raise DataError(
            f"`data.derived` computes numeric columns of a table, but {spec.source} is read as "
            f"texts (column {plan.text_kind!r}). Remove `data.derived`."
        )
    check_derived(spec.derived, main.columns, numeric, targets)
    numeric_fits = {n: NumericFit(n, seed + i) for i, n in enumerate(numeric + list(spec.derived))}
    category_fits = {n: CategoryFit(n, markers) for n in categorical}
    texts: list[str] = []
    writer = ShardWriter(
        folder,
        layout="parquet",
        num_classes=len(plan.classes) if plan.classes else None,
        background=True,
    )
    try:  # the background writer must finish before the build folder can go
        y_all = plan.y
        dropped_missing = 0
        offset = 0
        marker_set = pa.array(markers, pa.string())
        for columns, table in prefetched(_stored_tables(spill, stored, types), depth=1):
            rows = len(next(iter(columns.values())))
            split = plan.splits[offset : offset + rows].copy()
            y = y_all[offset : offset + rows]
            offset += rows
            for name in drop_row:
                column = columns[name]
                if plan.kinds[name] == ColumnType.NUMERIC:
                    missing = np.isnan(column.to_numpy(zero_copy_only=False).astype(np.float64))
                else:
                    missing = pc.is_in(column, value_set=marker_set).to_numpy(zero_copy_only=False)
                hit = missing & (split >= 0)
                dropped_missing += int(hit.sum())
                split[hit] = -1
            for s, split_name in enumerate(SPLIT_NAMES):
                mask = split == s
                if mask.any():
                    writer.write(
                        split_name, table.filter(pa.array(mask)), _target_array(y[mask], plan.task)
                    )
            train = split == TRAIN
            if not train.any():
                continue
            train_mask = pa.array(train)
            train_numbers: dict[str, np.ndarray] = {}
            for name in numeric:
                numbers = columns[name].to_numpy(zero_copy_only=False)
                train_numbers[name] = numbers.astype(np.float64, copy=False)[train]
                numeric_fits[name].update(train_numbers[name])
            for name, expression in spec.derived.items():
                numeric_fits[name].update(derive_numpy(expression, train_numbers))
            for name, category in category_fits.items():
                counts = pc.value_counts(pc.filter(columns[name], train_mask))
                values = counts.field("values").to_pylist()
                category.update(values, counts.field("counts").to_pylist())
            if plan.text_kind is not None:
                texts.extend(pc.filter(columns[plan.text_kind], train_mask).to_pylist())
        if dropped_missing:
            plan.dropped["missing feature (drop_row)"] = dropped_missing
        entries = writer.close()
    except BaseException:
        writer.abort()
        raise
    for name in SPLIT_NAMES:
        if entries.get(name, {}).get("num_examples", 0) == 0:
            raise DataError(
                f"After cleaning, the {name} split of {spec.source} is empty. Too many rows were "
                f"dropped ({', '.join(f'{k}: {v:,}' for k, v in plan.dropped.items()) or 'none'}) "
                f"or the split shares are too small; relax the cleaning or use more data."
            )
    fields: dict[str, Any] = {
        "task": plan.task.value,
        "splits": entries,
        "source_splits": ["train", "test"] if len(files) > 1 else ["train"],
    }
    fields["target"] = _target_manifest(plan, targets, entries)
    preprocessing: dict[str, Any] = {"sampling": spec.sampling.value}
    numeric_pre: list[dict[str, Any]] = []
    categorical_pre: list[dict[str, Any]] = []
    if plan.text_kind is not None:
        from dltrain.data.text import fit_vocabulary

        vocabulary, length = fit_vocabulary(texts, spec.text)
        fields["features"] = {
            "kind": "text",
            "column": plan.text_kind,
            "dtype": "string",
            "vocabulary_size": len(vocabulary) + 2,
            "sequence_length": length,
        }
        preprocessing.update(
            vocabulary=vocabulary, standardize=spec.text.standardize.value, sequence_length=length
        )
    else:
        columns_meta = [
            {
                "name": n,
                "type": plan.kinds[n].value,
                "dtype": "float32" if types[n] == pa.float64() else "string",
                "used": n in features,
            }
            for n in stored
        ]
        fields["features"] = {
            "kind": "table",
            "columns": columns_meta,
            "num_features": 0,
        }
        for name in numeric + list(spec.derived):
            column_spec = spec.columns.get(name, ColumnSpec())
            strategy, constant = (
                strategies[name] if name in strategies else _derived_strategy(spec, name)
            )
            numeric_pre.append(
                numeric_fits[name].finish(
                    strategy,
                    constant,
                    column_spec.outliers or spec.clean.outliers,
                    spec.clean,
                    column_spec.scaling or spec.numeric_scaling,
                )
            )
            if name in spec.derived:
                # The model recomputes the column from its raw inputs with this expression.
                numeric_pre[-1]["expression"] = spec.derived[name]
        categorical_pre = [
            category_fits[n].finish(*strategies[n], spec.max_categories) for n in categorical
        ]
        preprocessing.update(numeric=numeric_pre, categorical=categorical_pre)
        fields["features"]["num_features"] = len(numeric_pre) + sum(
            c["num_tokens"] for c in categorical_pre
        )
    fields["preprocessing"] = preprocessing
    fields["cleaning"] = _cleaning_report(plan, numeric_pre, categorical_pre, spec, scan)
    return fields


def _stored_tables(
    spill: _Spill, stored: list[str], types: dict[str, pa.DataType]
) -> Iterator[tuple[dict[str, pa.Array], pa.Table]]:
    """Pass 1's batches again, each with the table the shards store (numbers as float32, NaN
    where missing); made on the prefetch thread while the previous batch is fitted."""
    for _, columns in spill.replay():
        arrays = []
        for name in stored:
            column = columns[name]
            if types[name] == pa.float64():
                column = pc.cast(column, pa.float32()).fill_null(np.nan)
            arrays.append(column)
        yield columns, pa.Table.from_arrays(arrays, names=stored)


def _target_array(y: np.ndarray, task: Task) -> np.ndarray:
    return y.astype(np.int64) if task.is_classification else y.astype(np.float32)


def _target_manifest(plan: _Plan, targets: list[str], entries: dict[str, Any]) -> dict[str, Any]:
    if plan.classes is not None:
        counts = entries["train"]["class_counts"]
        return {
            "column": targets[0],
            "classes": plan.classes,
            "num_classes": len(plan.classes),
            "class_weights": class_weights(counts),
        }
    train_y = plan.y[plan.splits == TRAIN]  # regression only: classes need just the counts
    values = train_y.reshape(len(train_y), -1).astype(np.float64)
    return {
        "columns": targets,
        "mean": values.mean(axis=0).tolist(),
        "std": [float(s) or 1.0 for s in values.std(axis=0)],
        # The range seen in training: `model.clip_to_target_range` keeps predictions inside it.
        "min": values.min(axis=0).tolist(),
        "max": values.max(axis=0).tolist(),
    }


def _cleaning_report(
    plan: _Plan,
    numeric: list[dict[str, Any]],
    categorical: list[dict[str, Any]],
    spec: DataSpec,
    scan: _Scan,
) -> dict[str, Any]:
    """What cleaning did, in numbers, for the manifest and the printed report."""
    filled = []
    for entry in numeric:
        column = entry["column"]
        # A derived column has no scan: its missing values are counted on the training split.
        missing = scan.scans[column].missing if column in scan.scans else entry["train_missing"]
        if missing or entry["outliers"] != "none":
            filled.append(
                {
                    "column": entry["column"],
                    "missing": missing,
                    "missing_in_train": entry["train_missing"],
                    "strategy": entry["missing"],
                    "fill": entry["fill"],
                    "clip": [entry["low"], entry["high"]] if entry["outliers"] != "none" else None,
                }
            )
    for entry in categorical:
        missing = scan.scans[entry["column"]].missing
        if missing:
            fill = "its own category" if entry["missing"] == "constant" else entry["most_frequent"]
            filled.append(
                {
                    "column": entry["column"],
                    "missing": missing,
                    "missing_in_train": entry["train_missing"],
                    "strategy": entry["missing"],
                    "fill": fill,
                    "clip": None,
                }
            )
    return {
        "dropped_rows": plan.dropped,
        "duplicates": spec.clean.duplicates.value,
        "filled": filled,
        "notes": plan.notes,
    }
