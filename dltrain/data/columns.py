"""A shard's Arrow columns as the NumPy arrays a model input takes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def column_array(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as the array a model input takes: float32 numbers, or object strings."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float32)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def column_bytes(column: pa.ChunkedArray) -> np.ndarray:
    """As ``column_array``, but strings as fixed-width bytes where ``fixed_bytes`` keeps them."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return fixed_bytes(column)
    return column_array(column)


def fixed_bytes(column: pa.ChunkedArray) -> np.ndarray:
    """A string column as NumPy fixed-width bytes (UTF-8), or object strings where that is wider.

    Fixed width pads every value to the longest: kept only while that costs at most four times
    the values' own bytes (categories, short texts), so a column with one long text stays
    object strings. The values are the same UTF-8 bytes TensorFlow makes of the strings; a
    value ending in NUL bytes would lose them (NumPy's ``S`` strips them), which a category or
    a short text of a CSV does not have.
    """
    array = pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    array = array.fill_null("").cast(pa.large_binary())
    count = len(array)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset : array.offset + count + 1]
    lengths = np.diff(offsets)
    width = int(lengths.max()) if count else 0
    if width == 0 or count * width > 4 * int(lengths.sum()) + 16 * count:
        return column_array(column)
    data = np.frombuffer(array.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    out = np.zeros((count, width), np.uint8)
    # a boolean mask fills row by row, in the order the values' bytes lie in ``data``
    out[np.arange(width) < lengths[:, None]] = data
    return out.view(f"S{width}").reshape(count)
