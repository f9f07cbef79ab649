"""Fast, stable 64-bit hashes of column values, for duplicate rows, leakage and hash splits.

Stable means the same value gives the same hash in every batch, run and process (Python's
``hash`` of a string is salted per process, so it cannot be used). Numbers hash by their float64
bits, strings by a polynomial over their UTF-8 bytes computed with numpy over a batch's distinct
values only, so a category column costs one hash per category, not per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PRIME = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole 64-bit output."""
    h = h.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def combine(acc: np.ndarray, column_hash: np.ndarray) -> np.ndarray:
    """Fold one column's hashes into the running row hashes (order matters)."""
    with np.errstate(over="ignore"):
        return mix(acc * np.uint64(31) + column_hash)


def hash_numbers(values: np.ndarray) -> np.ndarray:
    """Hashes of float64 values; every NaN hashes alike and -0.0 like 0.0."""
    values = np.where(np.isnan(values), np.nan, values + 0.0)
    return mix(np.ascontiguousarray(values, dtype=np.float64).view(np.uint64))


def hash_strings(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Hashes of the strings of ``array``, computed once per distinct value."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if len(array) == 0:
        return np.zeros(0, np.uint64)
    encoded = pc.dictionary_encode(array)
    distinct = _hash_distinct(encoded.dictionary)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return distinct[indices]


def _hash_distinct(strings: pa.Array) -> np.ndarray:
    strings = strings.cast(pa.large_string()) if strings.type != pa.large_string() else strings
    n = len(strings)
    buffers = strings.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[strings.offset : strings.offset + n + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    base = int(offsets[0])
    starts = offsets[:-1] - base
    lengths = np.diff(offsets)
    raw = data[base : int(offsets[-1])]
    out = np.zeros(n, np.uint64)
    if len(raw):
        powers = np.cumprod(np.full(int(lengths.max()), _PRIME, dtype=np.uint64), dtype=np.uint64)
        position = np.arange(len(raw), dtype=np.int64) - np.repeat(starts, lengths)
        with np.errstate(over="ignore"):
            contributions = (raw.astype(np.uint64) + np.uint64(1)) * powers[position]
        nonempty = lengths > 0
        out[nonempty] = np.add.reduceat(contributions, starts[nonempty])
    with np.errstate(over="ignore"):
        out ^= lengths.astype(np.uint64) * _GOLDEN
    return mix(out)


def unit_interval(hashes: np.ndarray, seed: int) -> np.ndarray:
    """Map hashes (with a seed) to floats uniform in [0, 1), for hash and group splits."""
    with np.errstate(over="ignore"):
        mixed = mix(hashes ^ mix(np.array([seed], dtype=np.uint64))[0])
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
