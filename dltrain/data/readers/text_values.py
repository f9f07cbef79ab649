"""Text values as dltrain reads them everywhere: nulls as a missing marker, trimmed, and whole
numbers in one spelling, so prepare and predict see the same value for the same cell."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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
