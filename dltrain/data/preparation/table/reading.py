"""A table's files as every pass reads them: the source and its test file, the recipe's columns
checked against them, each column's read type, and batches with their text trimmed."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dltrain.data.readers.csv_sniff import is_number
from dltrain.data.readers.tables import TableFile, open_table
from dltrain.data.readers.text_values import canonical_text, null_marker
from dltrain.errors import ConversionError, DataError
from dltrain.recipe.data import ColumnSpec, ColumnType, DataFormat, DataSpec


@dataclass(frozen=True)
class TableSource:
    """The files of one table (the source, then its test file if any) and how they are read."""

    spec: DataSpec
    files: list[TableFile]
    types: dict[str, pa.DataType]  # per column: float64 (numbers) or string (everything else)

    @property
    def main(self) -> TableFile:
        """The source file (the test file, when there is one, comes second)."""
        return self.files[0]

    @property
    def has_test(self) -> bool:
        """Whether the recipe names the source's own test file."""
        return len(self.files) > 1

    @property
    def markers(self) -> list[str]:
        """The source's missing-value markers (the test file is read like the source)."""
        return self.main.missing_markers(self.spec.csv)


def open_table_source(spec: DataSpec) -> TableSource:
    """Open the recipe's table (and its test file) and decide how each column is read.

    Args:
        spec: the recipe's data section.

    Returns:
        The opened files with each column's read type.

    Raises:
        DataError: a file is missing or unreadable, or the recipe names a column it lacks.
    """
    files = open_sources(spec)
    check_columns(spec, files[0].columns, spec.source)
    return TableSource(spec=spec, files=files, types=read_types(files[0], spec))


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
            # difflib sees 'Y' and 'y' as unlike as 'Y' and 'q': try the spelling first
            guess = [c for c in columns if c.casefold() == name.casefold()][:1]
            guess = guess or difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
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


def stripped_batches(table: TableSource) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    """(file index, stripped columns) for every batch of every file, with conversion errors
    turned into messages that name the rows.

    Raises:
        DataError: a numeric column holds text (naming the rows).
    """
    types, spec = table.types, table.spec
    for index, file in enumerate(table.files):
        markers = file.missing_markers(spec.csv)
        null_as = null_marker(markers)
        try:
            for batch in file.batches(types):
                yield index, _strip(batch, types, null_as)
        except ConversionError as exc:
            raise find_text_in_numbers(file, exc.column, spec) from None


def _strip(
    batch: pa.RecordBatch, types: dict[str, pa.DataType], null_as: str
) -> dict[str, pa.Array]:
    """Text columns in their canonical spelling (see ``canonical_text``), and their nulls
    (Parquet's missing text) as a missing marker, so profiling, cleaning and the vocabularies
    count them as missing like a CSV's empty cells."""
    columns = {}
    for name in batch.schema.names:
        column = batch.column(name)
        if types[name] == pa.string():
            column = canonical_text(column, null_as)
        columns[name] = column
    return columns


def find_text_in_numbers(table: TableFile, column: str, spec: DataSpec) -> DataError:
    """Find the rows where a numeric column holds text (error path: one more read).

    Returns:
        The error to raise, naming the first few rows and what they hold.
    """
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
