"""Fast, stable 64-bit hashes of column values, for duplicate rows, leakage and hash splits.

Stable means the same value gives the same hash in every batch, run and process (Python's
``hash`` of a string is salted per process, so it cannot be used). Numbers hash by their float64
bits, strings by a polynomial over their UTF-8 bytes computed with numpy over a batch's distinct
values only, so a category column costs one hash per category, not per row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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
    """Fold one column's hashes into the running row hashes, in place (order matters).

    Column hashes are already mixed, so a polynomial over them is enough; ``mix`` the result
    once per row rather than once per column (half the hashing time of a wide table).
    """
    with np.errstate(over="ignore"):
        acc *= np.uint64(31)
        acc += column_hash
    return acc


def hash_numbers(values: np.ndarray) -> np.ndarray:
    """Hashes of float64 values; every NaN hashes alike and -0.0 like 0.0."""
    values = np.where(np.isnan(values), np.nan, values + 0.0)
    return mix(np.ascontiguousarray(values, dtype=np.float64).view(np.uint64))


def dictionary_encoded(column: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    """``column`` as distinct values and row indices (nulls, if any, as one more value); an
    already encoded column as it is, so a batch is encoded once for every use."""
    if isinstance(column, pa.DictionaryArray):
        return column
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded: pa.DictionaryArray = pc.dictionary_encode(column, null_encoding="encode")
    return encoded


def hash_strings(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Hashes of the strings of ``array`` (plain or dictionary-encoded), computed once per
    distinct value."""
    encoded = dictionary_encoded(array)
    if len(encoded) == 0:
        return np.zeros(0, np.uint64)
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


RECORD = np.dtype([("hash", "<u8"), ("row", "<u8")])
BUCKET_BYTES = 16 << 20  # source bytes per bucket: ~150k rows of a 100-byte-a-row CSV


class HashBuckets:
    """Row hashes spilled to files by their top bits, so exact duplicate and leakage checks
    need one bucket in memory at a time instead of every row's hash.

    Equal hashes land in the same bucket, so a question answered bucket by bucket (is this
    row's hash seen before? is this validation row's hash among the training rows'?) gives
    the answer for the whole source. Within a bucket the records stay in row order.

    Args:
        folder: where the bucket files go (the temporary build folder).
        kinds: one set of buckets per kind of hash (e.g. whole rows, features only).
        source_bytes: the sources' size, which sets the number of buckets (1 to 256).
    """

    def __init__(self, folder: Path, kinds: tuple[str, ...], source_bytes: int) -> None:
        self.bits = min(8, max(0, math.ceil(math.log2(max(source_bytes, 1) / BUCKET_BYTES))))
        self.count = 1 << self.bits
        self.paths = {
            kind: [folder / f".hashes-{kind}-{b:03d}.bin" for b in range(self.count)]
            for kind in kinds
        }
        self._handles: dict[str, list[BinaryIO]] | None = {
            kind: [path.open("wb") for path in paths] for kind, paths in self.paths.items()
        }

    def add(self, kind: str, hashes: np.ndarray, first_row: int) -> None:
        """Append the hashes of rows ``first_row``, ``first_row + 1``, … to their buckets."""
        assert self._handles is not None, "add after the buckets were read"
        records = np.empty(len(hashes), RECORD)
        if self.bits == 0:
            records["hash"] = hashes
            records["row"] = np.arange(first_row, first_row + len(hashes), dtype=np.uint64)
            self._handles[kind][0].write(records.data)
            return
        bucket = (hashes >> np.uint64(64 - self.bits)).astype(np.uint16)
        order = np.argsort(bucket, kind="stable")  # stable: row order within each bucket
        records["hash"] = hashes[order]
        records["row"] = order.astype(np.uint64) + np.uint64(first_row)
        ends = np.cumsum(np.bincount(bucket, minlength=self.count))
        start = 0
        for b, end in enumerate(ends.tolist()):
            if end > start:
                self._handles[kind][b].write(records[start:end].data)
            start = end

    def buckets(self, kind: str) -> Iterator[np.ndarray]:
        """Each bucket's records (fields ``hash`` and ``row``), in row order within a bucket."""
        self._close_handles()
        for path in self.paths[kind]:
            yield np.fromfile(path, dtype=RECORD)

    def _close_handles(self) -> None:
        if self._handles is not None:
            for handles in self._handles.values():
                for handle in handles:
                    handle.close()
            self._handles = None

    def close(self) -> None:
        """Close and delete every bucket file."""
        self._close_handles()
        for paths in self.paths.values():
            for path in paths:
                path.unlink(missing_ok=True)
