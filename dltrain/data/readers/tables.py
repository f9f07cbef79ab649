"""Reading tables: delimited text (CSV, TSV, any delimiter) and Parquet, streamed in batches.

We read with pyarrow's streaming CSV reader. Measured on a 1M-row, 77 MB CSV (2 cores):
pyarrow's streaming reader 0.55-0.9 s at ~16 MB of buffers per batch, ``pandas.read_csv`` 1.2 s
holding the whole frame; pyarrow also parses straight into typed columns, streams files larger
than memory and reads Parquet with the same batches. pandas is used only for small series work.

What the recipe's ``data.csv`` leaves on ``auto`` is worked out by ``csv_sniff``; text values
are spelled by ``text_values`` as every reader spells them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dltrain.data.readers.arrays import FLOAT32_MAX
from dltrain.data.readers.csv_sniff import CsvOptions, sniff_csv
from dltrain.errors import ConversionError, DataError
from dltrain.recipe.data import CsvSpec, DataFormat

# pyarrow's streaming reader parses 1 MB blocks fastest (0.6 s for 92 MB on 2 cores; 1.1 s at
# 8 MB, 2.7 s at 32 MB): its read-ahead overlaps parsing. We hand on ~BATCH_ROWS rows at a time
# so per-batch work in Python stays a small share.
BLOCK_BYTES = 1 << 20
BATCH_ROWS = 131_072
PARQUET_BATCH_ROWS = BATCH_ROWS


@dataclass(frozen=True)
class TableFile:
    """One table file and how to read it."""

    path: Path
    format: DataFormat
    columns: list[str]
    guessed: dict[str, pa.DataType]  # pyarrow's types from the first block
    csv: CsvOptions | None = None

    def missing_markers(self, recipe: CsvSpec) -> list[str]:
        """The cell values that mean missing here: the file's own CSV options', else the
        recipe's (a Parquet file has no CSV options; its text columns may hold them too)."""
        return list(self.csv.missing_values if self.csv else recipe.missing_values)

    def line_of(self, row: int) -> int:
        """The 1-based line of data row ``row`` (0-based) in the file, for messages."""
        return row + 1 + (self.csv.skip_rows if self.csv else 0)

    def batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        """The file's rows in batches, each column converted to ``types[column]``.

        Raises:
            DataError: a ragged row, or a value that does not convert (see ``ConversionError``).
        """
        if self.format == DataFormat.PARQUET:
            yield from self._finite(self._parquet_batches(types))
            return
        yield from self._finite(self._csv_batches(types))

    def _csv_batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        assert self.csv is not None
        options = self.csv
        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=_read_options(options, BLOCK_BYTES),
                parse_options=_parse_options(options),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    null_values=options.missing_values,
                    strings_can_be_null=False,
                    # a quoted "" (or "NA") in a numeric column is missing, not text: files that
                    # quote every field write missing numbers that way
                    quoted_strings_can_be_null=True,
                ),
            )
            try:
                yield from _rebatch(reader, BATCH_ROWS)
            finally:
                reader.close()
        except pa.ArrowInvalid as exc:
            raise self._explain(str(exc)) from None

    def _finite(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches``, refusing numbers a model cannot take: inf, or beyond float32's range
        (the precision models compute in, where they become inf). Prepare, predict and evaluate
        --data all read tables here, so all three refuse the same values.

        Raises:
            DataError: naming the column, the first rows and their values.
        """
        row = 0
        for batch in batches:
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                if pa.types.is_floating(column.type):
                    self._check_finite(name, column, row)
            row += batch.num_rows
            yield batch

    def _check_finite(self, name: str, column: pa.Array, first_row: int) -> None:
        huge = pc.fill_null(pc.greater(pc.abs(column), FLOAT32_MAX), False)
        if not pc.any(huge).as_py():
            return
        rows = np.flatnonzero(huge.to_numpy(zero_copy_only=False))
        values = column.take(pa.array(rows[:5])).to_pylist()
        shown = "; ".join(
            f"row {first_row + r + 1}"
            + (f" (line {self.line_of(first_row + r)})" if self.csv else "")
            + f": {v:g}"
            for r, v in zip(rows[:5], values, strict=True)
        )
        more = f" and {len(rows) - 5:,} more in this batch" if len(rows) > 5 else ""
        raise DataError(
            f"Column {name!r} of {self.path} holds numbers a model cannot compute with (infinite, "
            f"or beyond ±3.4e38, float32's range): {shown}{more}. Expected finite numbers; fix or "
            f"drop those rows, or empty those cells so they are filled as missing values."
        )

    def _parquet_batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        try:
            parquet = pq.ParquetFile(self.path)
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                arrays = [_cast(batch.column(name), types[name]) for name in self.columns]
                yield pa.RecordBatch.from_arrays(arrays, names=self.columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(
                f"Cannot read {self.path} as Parquet ({exc}). Expected a Parquet file; the copy "
                f"may be truncated. Copy it again, or set `data.format` if it is not Parquet."
            ) from None

    def _explain(self, message: str) -> Exception:
        ragged = re.search(r"Expected (\d+) columns, got (\d+): (.*)", message, re.S)
        if ragged:
            expected, got, text = ragged.groups()
            line = _find_line(self.path, text.strip()[:200], self.csv)
            where = f"line {line}" if line else "a row"
            delimiter = self.csv.delimiter if self.csv else ","
            hint = (
                " The file's quotes look unbalanced; try `data.csv.quoting: false`."
                if '"' in text and self.csv and self.csv.quoting
                else ""
            )
            return DataError(
                f"{self.path}, {where}: the row has {got} fields where the header has {expected} "
                f"({text.strip()[:120]!r}). Expected every row to have the same number of fields. "
                f"Quote values that contain the delimiter {delimiter!r}, fix or remove the row, "
                f"or set `data.csv.delimiter` if it was guessed wrong.{hint}"
            )
        conversion = re.search(
            r"CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", message, re.S
        )
        if conversion:
            index, _, value = conversion.groups()
            return ConversionError(self.columns[int(index)], value)
        if "straddling object straddles two block boundaries" in message:
            return DataError(
                f"{self.path} holds a row longer than {BLOCK_BYTES >> 20} MB, which no table row "
                f"should be: usually a quote that opens a value and never closes, so the rest of "
                f"the file reads as one value. Fix that quote, or set `data.csv.quoting: false` "
                f"to read '\"' as an ordinary character."
            )
        if "Empty CSV file" in message:
            return DataError(
                f"{self.path} is empty. Expected a table with a header row and data rows; check "
                f"that the export or download finished."
            )
        return DataError(
            f"Cannot read {self.path} as a delimited table: {message.strip()[:300]}. Check "
            f"`data.csv` (delimiter {self.csv.delimiter if self.csv else '?'!r}, quoting, "
            f"encoding) against the file."
        )


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Join small batches into ones of at least ``rows`` rows (one contiguous chunk each)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if pending and count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def open_table(
    path: Path, fmt: DataFormat, spec: CsvSpec, skip_rows: int | None = None
) -> TableFile:
    """Open a CSV/TSV or Parquet file, resolving every ``auto`` read option.

    Args:
        path: the file.
        fmt: ``csv``, ``parquet`` or ``auto`` (by suffix: ``.parquet``/``.pq`` are Parquet).
        spec: the recipe's ``data.csv`` section.
        skip_rows: overrides ``spec.skip_rows`` (a test file with its own junk first line).

    Raises:
        DataError: an empty, header-only or unreadable file.
    """
    if fmt == DataFormat.PARQUET or (fmt == DataFormat.AUTO and path.suffix in (".parquet", ".pq")):
        return _open_parquet(path)
    options = sniff_csv(path, spec, spec.skip_rows if skip_rows is None else skip_rows)
    table = TableFile(
        path=path, format=DataFormat.CSV, columns=options.column_names, guessed={}, csv=options
    )
    guessed = _guess_types(table)
    return TableFile(
        path=path, format=DataFormat.CSV, columns=options.column_names, guessed=guessed, csv=options
    )


def _open_parquet(path: Path) -> TableFile:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"Cannot read {path} as Parquet ({exc}). Expected a Parquet file; the copy may be "
            f"truncated. Copy it again, or set `data.format: csv` if it is a text table."
        ) from None
    names = list(schema.names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # pyarrow can write them; no column could be told from its twin
        raise DataError(
            f"{path} names the column(s) {', '.join(map(repr, repeated))} more than once. "
            f"Expected one column per name; rename the duplicates when writing the file."
        )
    nested = [f"{f.name} ({f.type})" for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise DataError(
            f"{path} has column(s) of nested values: {', '.join(nested)}. dltrain reads flat "
            f"columns (numbers, text, dates, booleans); write one column per value, or leave "
            f"those columns out of the file."
        )
    guessed = {}
    for f in schema:
        if (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_decimal(f.type)
        ):
            guessed[f.name] = pa.float64()
        elif pa.types.is_temporal(f.type):
            guessed[f.name] = pa.timestamp("s")
        else:
            guessed[f.name] = pa.string()
    return TableFile(
        path=path, format=DataFormat.PARQUET, columns=list(schema.names), guessed=guessed
    )


def _cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    if array.type == target:
        return array
    if pa.types.is_string(target):
        if pa.types.is_temporal(array.type):
            return pc.cast(pc.cast(array, pa.timestamp("s")), pa.string()).fill_null("")
        return pc.cast(array, pa.string()).fill_null("")
    # float64 holds integers beyond 2**53 only approximately, as the model's float32 does: a
    # safe cast would refuse them, and the file with them
    return pc.cast(array, target, safe=not pa.types.is_integer(array.type))


def _read_options(options: CsvOptions, block_size: int) -> pacsv.ReadOptions:
    """Where the rows start, what the columns are called, the encoding, and the block size."""
    return pacsv.ReadOptions(
        skip_rows=options.skip_rows,
        column_names=options.column_names,
        encoding=options.encoding,
        block_size=block_size,
    )


def _parse_options(options: CsvOptions) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char='"' if options.quoting else False,
        double_quote=options.quoting,
        newlines_in_values=options.quoting,
        ignore_empty_lines=True,
    )


def _guess_types(table: TableFile) -> dict[str, pa.DataType]:
    """pyarrow's own reading of the first block: which columns parse as numbers or dates."""
    assert table.csv is not None
    options = table.csv
    try:
        reader = pacsv.open_csv(
            table.path,
            read_options=_read_options(options, 1 << 20),
            parse_options=_parse_options(options),
            convert_options=pacsv.ConvertOptions(
                null_values=options.missing_values, strings_can_be_null=True
            ),
        )
        schema = reader.schema
        reader.close()  # an abandoned reader's read-ahead thread can abort the process at exit
    except pa.ArrowInvalid as exc:
        raise table._explain(str(exc)) from None
    guessed: dict[str, pa.DataType] = {}
    for f in schema:
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            guessed[f.name] = pa.float64()
        elif pa.types.is_temporal(f.type):
            guessed[f.name] = pa.timestamp("s")
        else:
            guessed[f.name] = pa.string()  # strings, booleans, all-missing columns
    return guessed


def _find_line(path: Path, text: str, options: CsvOptions | None) -> int | None:
    """The 1-based line holding ``text`` (error path only: scans the file once)."""
    if not text:
        return None
    encoding = options.encoding if options else "utf-8"
    try:
        with path.open(encoding=encoding, errors="replace", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if line.rstrip("\r\n").lstrip("\ufeff") == text:
                    return number
    except OSError:
        return None
    return None


def read_all(table: TableFile, types: dict[str, pa.DataType]) -> pa.Table:
    """The whole file as one Arrow table (for small sources such as a time series)."""
    batches = list(table.batches(types))
    if not batches:
        return pa.table({name: pa.array([], type=types[name]) for name in table.columns})
    return pa.Table.from_batches(batches)
