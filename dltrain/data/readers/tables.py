"""Reading tables: delimited text (CSV, TSV, any delimiter) and Parquet, streamed in batches.

We read with pyarrow's streaming CSV reader. Measured on a 1M-row, 77 MB CSV (2 cores):
pyarrow's streaming reader 0.55-0.9 s at ~16 MB of buffers per batch, ``pandas.read_csv`` 1.2 s
holding the whole frame; pyarrow also parses straight into typed columns, streams files larger
than memory and reads Parquet with the same batches. pandas is used only for small series work.

``sniff_csv`` works out what the recipe leaves on ``auto`` from the file's first lines: the
delimiter, whether there is a header row, whether quotes are CSV quoting at all (SMS spam has
stray ``"`` inside messages), and a UTF-8 byte-order mark.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dltrain.errors import ConversionError, DataError
from dltrain.recipe.data import CsvSpec, DataFormat

SAMPLE_BYTES = 256 * 1024
# pyarrow's streaming reader parses 1 MB blocks fastest (0.6 s for 92 MB on 2 cores; 1.1 s at
# 8 MB, 2.7 s at 32 MB): its read-ahead overlaps parsing. We hand on ~BATCH_ROWS rows at a time
# so per-batch work in Python stays a small share.
BLOCK_BYTES = 1 << 20
BATCH_ROWS = 131_072
PARQUET_BATCH_ROWS = BATCH_ROWS
_DELIMITERS = [",", "\t", ";", "|"]
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|infinity|nan)$", re.I)


@dataclass(frozen=True)
class CsvOptions:
    """How a delimited file is read, with every ``auto`` resolved."""

    delimiter: str
    header: bool
    column_names: list[str]
    skip_rows: int  # lines skipped before the first data row (header included)
    quoting: bool
    encoding: str
    missing_values: list[str]
    strip: bool = True
    notes: list[str] = field(default_factory=list)


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
            yield from self._parquet_batches(types)
            return
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
    return pc.cast(array, target)


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


def sniff_csv(path: Path, spec: CsvSpec, skip_rows: int) -> CsvOptions:
    """Resolve the ``auto`` settings of ``spec`` from the first lines of ``path``.

    Raises:
        DataError: the file is empty or holds no data rows.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(SAMPLE_BYTES)
            truncated = bool(handle.read(1))
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}. Check the path and its permissions.") from None
    notes = []
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
        notes.append("removed a UTF-8 byte-order mark")
    encoding, text = _decode(path, head, spec.encoding, truncated)
    if spec.encoding == "auto" and encoding != "utf-8":
        notes.append(
            f"not UTF-8: read as {encoding} (set `data.csv.encoding` if that is not the file's)"
        )
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the sample may end inside a line
    lines = lines[skip_rows:]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise DataError(
            f"{path} holds no rows{f' after skipping {skip_rows} line(s)' if skip_rows else ''}. "
            f"Expected a table with a header row and data rows; check that the export or "
            f"download finished."
        )
    delimiter = spec.delimiter if spec.delimiter != "auto" else _sniff_delimiter(lines)
    if spec.delimiter == "auto":
        notes.append(f"delimiter {delimiter!r}")
    quoting = spec.quoting and not _stray_quotes(lines[:2000], delimiter)
    if spec.quoting and not quoting:
        notes.append('quotes appear inside fields, so " is read as an ordinary character')
    rows = list(
        csv.reader(
            lines[:200],
            delimiter=delimiter,
            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        )
    )
    header = spec.header if spec.header is not None else _looks_like_header(rows)
    width = len(rows[0])
    if spec.column_names is not None:
        names = list(spec.column_names)
        if len(names) != width:
            raise DataError(
                f"`data.csv.column_names` names {len(names)} columns but {path} has {width} "
                f"fields per row (first row: {lines[0][:100]!r}). Name every column, in order."
            )
    elif header:
        names = _unique_names([name.strip() for name in rows[0]])
    else:
        names = [f"column_{i + 1}" for i in range(width)]
        notes.append(f"no header row: columns named column_1 … column_{width}")
    if header and len(rows) == 1 and not truncated:
        raise DataError(
            f"{path} has a header row ({', '.join(names[:6])}{'…' if len(names) > 6 else ''}) "
            f"but no data rows. Expected at least one row of data below it."
        )
    return CsvOptions(
        delimiter=delimiter,
        header=header,
        column_names=names,
        skip_rows=skip_rows + (1 if header else 0),
        quoting=quoting,
        encoding=encoding,
        missing_values=list(spec.missing_values),
        notes=notes,
    )


# Tried in order for `encoding: auto`: UTF-8, then Windows-1252 (what Excel and most Western
# European exports write, and a superset of Latin-1's printable characters), then Latin-1, which
# decodes any byte sequence.
_AUTO_ENCODINGS = ("utf-8", "cp1252", "latin-1")


def _decode(path: Path, head: bytes, encoding: str, truncated: bool) -> tuple[str, str]:
    """The sample as text, and the encoding that read it.

    Raises:
        DataError: the recipe's encoding is unknown or does not read the file.
    """
    errors = "ignore" if truncated else "strict"  # the sample may end inside a character
    candidates = _AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    for candidate in candidates:
        try:
            return candidate, head.decode(
                candidate, errors=errors if candidate == "utf-8" else "strict"
            )
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise DataError(
                f"`data.csv.encoding: {encoding}` is not an encoding Python knows. Expected a "
                f"codec name such as utf-8, cp1252, latin-1 or utf-16, or auto."
            ) from None
    raise DataError(
        f"{path} is not {encoding} text. Set `data.csv.encoding` to the file's encoding (for "
        f"example latin-1 or cp1252), or auto to detect UTF-8 and Windows-1252."
    )


def _sniff_delimiter(lines: list[str]) -> str:
    sample = lines[:200]
    best, best_score = ",", -1.0
    for delimiter in _DELIMITERS:
        counts = [line.count(delimiter) for line in sample]
        if not counts or max(counts) == 0:
            continue
        common = max(set(counts), key=counts.count)
        consistency = counts.count(common) / len(counts)
        score = consistency * (1 + min(common, 50) / 100) if common else 0.0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _stray_quotes(lines: list[str], delimiter: str) -> bool:
    """True when quote characters sit inside fields, which CSV quoting never produces."""
    for line in lines:
        if '"' not in line:
            continue
        for match in re.finditer('"+', line):
            start, end = match.span()
            run = end - start
            at_start = start == 0 or line[start - 1] == delimiter
            at_end = end == len(line) or line[end] == delimiter
            if not (at_start or at_end or run % 2 == 0):
                return True
    return False


def _looks_like_header(rows: list[list[str]]) -> bool:
    if len(rows) < 2:
        return True
    first, rest = rows[0], rows[1:51]
    votes_header = 0
    for j, value in enumerate(first):
        below = [row[j].strip() for row in rest if j < len(row)]
        value = value.strip()
        if _NUMBER.match(value):
            return False  # a header is names, not numbers
        numeric_below = sum(bool(_NUMBER.match(v)) for v in below if v)
        if below and numeric_below >= 0.8 * len([v for v in below if v]) and numeric_below:
            votes_header += 1
        elif value in below:
            return False  # the first value repeats in its column: it is data
    return votes_header > 0 or len(set(first)) == len(first)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = name or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


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


def is_number(value: str) -> bool:
    """Whether a cell reads as a number (the same rule the profile uses)."""
    return bool(_NUMBER.match(value.strip()))


def read_all(table: TableFile, types: dict[str, pa.DataType]) -> pa.Table:
    """The whole file as one Arrow table (for small sources such as a time series)."""
    batches = list(table.batches(types))
    if not batches:
        return pa.table({name: pa.array([], type=types[name]) for name in table.columns})
    return pa.Table.from_batches(batches)


def null_marker(markers: list[str]) -> str:
    """The missing-value marker a null (Parquet's missing text) is read as."""
    return "" if "" in markers or not markers else markers[0]


# A whole number written with a zero fraction: "2.0", "-3.00" (spelled "2", "-3" canonically).
_ZERO_FRACTION = r"^([+-]?[0-9]+)\.0+$"


def canonical_text(column: pa.Array, null_as: str) -> pa.Array:
    """A text column as prepare stores it and predict reads it: nulls as ``null_as``, values
    trimmed, and whole numbers with a zero fraction spelled as integers.

    A category column written ``2`` in one file is often ``2.0`` in another (a spreadsheet's
    export, a float column cast to text); both must reach the category prepare learned, so both
    paths read text through this one function.

    Example:
        >>> canonical_text(pa.array([" 2.0", "2", None, "F"]), "").to_pylist()
        ['2', '2', '', 'F']
    """
    if column.null_count:
        column = column.fill_null(null_as)
    if needs_trim(column):
        column = pc.utf8_trim_whitespace(column)
    if _may_have_zero_fraction(column):
        column = pc.replace_substring_regex(column, pattern=_ZERO_FRACTION, replacement=r"\1")
    return column


def _may_have_zero_fraction(column: pa.Array) -> bool:
    """Whether any value ends in ".0" or "00": two bytes per value, where the regular
    expression over every value costs several times the whole check."""
    spans = _value_spans(column)
    if spans is None:
        return True
    starts, ends, data = spans
    long_enough = ends - starts >= 2
    if not long_enough.any():
        return False
    last, before = data[ends[long_enough] - 1], data[ends[long_enough] - 2]
    return bool(((last == ord("0")) & ((before == ord(".")) | (before == ord("0")))).any())


# ASCII whitespace, plus every byte >= 0x80: a value may start or end with a Unicode space
_MAY_BE_SPACE = np.zeros(256, bool)
_MAY_BE_SPACE[[9, 10, 11, 12, 13, 32]] = True
_MAY_BE_SPACE[0x80:] = True


def needs_trim(column: pa.Array) -> bool:
    """Whether any value starts or ends with whitespace: looks at two bytes per value, where
    trimming every value (a copy of the column) costs ~5x the whole check."""
    spans = _value_spans(column)
    if spans is None:
        return True
    starts, ends, data = spans
    nonempty = ends > starts
    if not nonempty.any():
        return False
    first = data[starts[nonempty]]
    last = data[ends[nonempty] - 1]
    return bool(_MAY_BE_SPACE[first].any() or _MAY_BE_SPACE[last].any())


def _value_spans(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Each value's start and end offset in the column's data buffer, and that buffer, read in
    place; None when the column is not a plain string array (the caller then assumes the worst)."""
    if not isinstance(column, pa.StringArray) or len(column) == 0:
        return None
    _, offsets_buffer, data_buffer = column.buffers()
    if data_buffer is None:
        empty = np.zeros(len(column), np.int32)
        return empty, empty, np.zeros(0, np.uint8)
    offsets = np.frombuffer(offsets_buffer, np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    return offsets[:-1], offsets[1:], np.frombuffer(data_buffer, np.uint8)
