"""The prepared dataset: sharded, compressed splits plus a manifest that says what they hold.

Layout of ``data/<recipe>/``::

    manifest.json                  schema, statistics, split sizes, class counts, checksums
    profile.json                   the source's column profile (what `prepare` printed)
    train-00000-of-00003.npz       images and windows: arrays x (examples) and y (targets)
    train-00000-of-00003.arrow     tables and texts: one column per source column, plus y

Arrays go to compressed ``.npz``; tables to Arrow IPC files, uncompressed, which keep strings
and column names: measured on a 250k-row shard of the prepare benchmark's table against
Parquet-LZ4 (our format before), about 7x cheaper to write and 1.4-2x faster to read back into
NumPy (two runs), at 1.9x the disk (benchmarks/RESULTS.md, "Table shard formats"). Prepare
pays the write and every epoch of a streamed training the read; disk is the cheap side. The
whole folder is written
under a temporary name and renamed into place, and every shard's SHA-256 is in the manifest, so
a later command never trusts a half-written or edited dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from dltrain.data.columns import column_array, column_bytes
from dltrain.errors import DataError
from dltrain.faults import crash_point
from dltrain.manifest import (
    FeatureKind,
    Manifest,
    Sampling,
    Shard,
    Source,
    SourceFile,
    Split,
    read_manifest,
)
from dltrain.recipe.data import DataFormat
from dltrain.runs import MANIFEST_FILE

PROFILE_FILE = "profile.json"
# A shard ends at SHARD_ROWS rows or SHARD_BYTES of examples in memory, whichever comes first:
# bounded files that a streamed epoch reads whole (a reader thread holds two at once, the
# shuffle pool one more), and enough of them in a large split that interleaving mixes them and
# each of several workers takes whole files (data/streaming.py). 100k rows of the streaming
# benchmark's mixed table are ~9 MB of Arrow; 16 MiB holds 20k 28×28 images, 111 decoded
# 224×224 RGB ones.
SHARD_ROWS = 100_000
SHARD_BYTES = 16 << 20
TARGET_COLUMN = "__y__"
MAX_PENDING = 2  # shards queued for the background writer

Features = np.ndarray | dict[str, np.ndarray]


class ShardLayout(StrEnum):
    """A shard's file format, which is also its suffix."""

    NPZ = "npz"  # arrays: images and windows
    ARROW = "arrow"  # tables and texts: Arrow IPC files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_source(source: Path, fmt: DataFormat, files: list[Path]) -> Source:
    """The manifest's ``source``: each file's name, size and SHA-256, and one digest over them.

    Args:
        source: the recipe's source, as the manifest names it.
        fmt: the source's format (not ``auto``).
        files: the files the prepared dataset depends on.

    Returns:
        The source, whose ``fingerprint`` changes when any file's content does.
    """
    entries = [
        SourceFile(name=p.name, bytes=p.stat().st_size, sha256=sha256_file(p)) for p in files
    ]
    # The digest is over the JSON of the entries, as manifests already written recorded it.
    listed = json.dumps([e.model_dump() for e in entries], sort_keys=True)
    overall = hashlib.sha256(listed.encode()).hexdigest()
    return Source(path=str(source), format=fmt, files=entries, fingerprint=overall)


def shard_rows_for(bytes_per_row: float) -> int:
    """Rows per shard for examples of this size: SHARD_ROWS, fewer where they pass SHARD_BYTES.

    Args:
        bytes_per_row: one example's size in memory (an image's pixels, a table row's buffers).

    Returns:
        At least 1.
    """
    return max(1, min(SHARD_ROWS, int(SHARD_BYTES // max(bytes_per_row, 1.0))))


@dataclass
class _PendingShard:
    """A shard as it is written: ``sha256`` is filled in once the (background) write ends."""

    file: str
    num_examples: int
    sha256: str = ""


@dataclass
class _SplitBuffer:
    parts_x: list[Any] = field(default_factory=list)
    parts_y: list[np.ndarray] = field(default_factory=list)
    buffered: int = 0
    total: int = 0
    shards: list[_PendingShard] = field(default_factory=list)
    class_counts: np.ndarray | None = None


class ShardWriter:
    """Write splits shard by shard as examples arrive, so memory stays flat for any size.

    ``write(split, x, y)`` takes arrays (``npz``) or Arrow tables of feature columns (``arrow``)
    and their targets; ``close()`` flushes and returns the manifest's ``splits``. Shards
    are first named ``<split>-<i>.part`` and renamed to ``<split>-<i>-of-<n>`` at the end.
    """

    def __init__(
        self,
        folder: Path,
        *,
        layout: ShardLayout,
        num_classes: int | None,
        background: bool = False,
        rows_per_shard: int | None = None,
    ) -> None:
        self.folder = folder
        self.layout = ShardLayout(layout)
        self.num_classes = num_classes
        # None: sized from the first examples written, by SHARD_ROWS and SHARD_BYTES
        self.rows_per_shard = rows_per_shard
        self._splits: dict[str, _SplitBuffer] = {}
        # background: shards are encoded, written and checksummed on one worker thread (Parquet
        # and hashlib release the GIL) while the caller prepares the next rows; at most
        # MAX_PENDING shards wait, so memory stays bounded. The caller must call close() or
        # wait() before it removes the folder.
        self._pool = ThreadPoolExecutor(1, "dltrain-shards") if background else None
        self._pending: deque[Future[None]] = deque()

    def write(self, split: str, x: Any, y: np.ndarray) -> None:
        """Append examples ``x`` (array or Arrow table) with targets ``y`` to ``split``."""
        buffer = self._splits.setdefault(split, _SplitBuffer())
        if len(y) == 0:
            return
        if self.rows_per_shard is None:
            self.rows_per_shard = shard_rows_for(x.nbytes / len(y))
        buffer.parts_x.append(x)
        buffer.parts_y.append(y)
        buffer.buffered += len(y)
        buffer.total += len(y)
        if self.num_classes is not None:
            counts = np.bincount(y.astype(np.int64), minlength=self.num_classes)
            buffer.class_counts = (
                counts if buffer.class_counts is None else buffer.class_counts + counts
            )
        while buffer.buffered >= self.rows_per_shard:
            self._flush(split, buffer, self.rows_per_shard)

    def close(self) -> dict[str, Split]:
        """Flush what is left and name the shards.

        Returns:
            The manifest's ``splits``: each split's examples, shards and (classes) class counts.

        Raises:
            OSError: a shard could not be written.
        """
        for split, buffer in self._splits.items():
            if buffer.buffered or not buffer.shards:
                self._flush(split, buffer, buffer.buffered)
        self.wait()
        splits: dict[str, Split] = {}
        for split, buffer in self._splits.items():
            count = len(buffer.shards)
            shards = []
            for i, pending in enumerate(buffer.shards):
                final = f"{split}-{i:05d}-of-{count:05d}.{self.layout.value}"
                (self.folder / pending.file).rename(self.folder / final)
                shards.append(
                    Shard(file=final, num_examples=pending.num_examples, sha256=pending.sha256)
                )
            class_counts = None
            if self.num_classes is not None:
                counts = buffer.class_counts
                class_counts = counts.tolist() if counts is not None else [0] * self.num_classes
            splits[split] = Split(
                num_examples=buffer.total, shards=shards, class_counts=class_counts
            )
        return splits

    def wait(self) -> None:
        """Wait for the shards being written in the background (a no-op otherwise).

        Raises:
            OSError: a shard could not be written (every pending write has ended by then).
        """
        error: BaseException | None = None
        while self._pending:
            try:
                self._pending.popleft().result()
            except BaseException as exc:  # keep waiting: no write may outlive the folder
                error = error or exc
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if error is not None:
            raise error

    def abort(self) -> None:
        """After a failure elsewhere: let background writes end, ignoring their errors."""
        with contextlib.suppress(Exception):
            self.wait()

    def _flush(self, split: str, buffer: _SplitBuffer, rows: int) -> None:
        x, y = self._take(buffer, rows)
        path = self.folder / f"{split}-{len(buffer.shards):05d}.part"
        shard = _PendingShard(file=path.name, num_examples=len(y))
        buffer.shards.append(shard)
        if self._pool is None:
            self._write_shard(path, x, y, shard)
            return
        while len(self._pending) >= MAX_PENDING:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write_shard, path, x, y, shard))

    def _write_shard(self, path: Path, x: Any, y: np.ndarray, shard: _PendingShard) -> None:
        if self.layout == ShardLayout.NPZ:
            with path.open("wb") as handle:
                np.savez_compressed(handle, x=x, y=y)
        else:
            table = x.append_column(TARGET_COLUMN, pa.array(y)) if y.ndim == 1 else x
            if y.ndim == 2:
                for i in range(y.shape[1]):
                    table = table.append_column(f"{TARGET_COLUMN}{i}", pa.array(y[:, i]))
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
        shard.sha256 = sha256_file(path)
        crash_point("prepare.shard")

    def _take(self, buffer: _SplitBuffer, rows: int) -> tuple[Any, np.ndarray]:
        if self.layout == ShardLayout.NPZ:
            x_all = np.concatenate(buffer.parts_x) if buffer.parts_x else np.zeros((0,))
        else:
            x_all = pa.concat_tables(buffer.parts_x) if buffer.parts_x else pa.table({})
        y_all = np.concatenate(buffer.parts_y) if buffer.parts_y else np.zeros((0,), np.int64)
        x, y = x_all[:rows], y_all[:rows]
        rest = len(y_all) - rows
        buffer.parts_x = [x_all[rows:]] if rest else []
        buffer.parts_y = [y_all[rows:]] if rest else []
        buffer.buffered = rest
        return x, y


@dataclass
class PreparedDataset:
    """A prepared dataset on disk; split arrays are read (and verified) on demand."""

    folder: Path
    manifest: Manifest

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's array shape (images, windows); () for tables and texts."""
        return tuple(getattr(self.manifest.features, "shape", ()))

    def num_examples(self, split: str, *, resample: bool = True) -> int:
        """How many examples ``load_split(split, resample=resample)`` yields.

        Over- or under-sampling changes the training split's size (an epoch of a 4:1 split
        oversampled has 8/5 of its rows), so schedules, progress and ``--dry-run`` count the
        batches training really runs. The class counts the manifest holds decide it, as they
        decide ``resample_rows``; nothing is read.

        Args:
            split: the split's name.
            resample: count the training split as resampled, as ``load_split`` reads it.

        Returns:
            The number of examples.
        """
        stored = self.manifest.splits[split]
        sampling = self.manifest.sampling
        if not resample or split != "train" or sampling == Sampling.NONE:
            return stored.num_examples
        if stored.class_counts is None:  # a manifest that does not say: count what is read
            return len(self.load_split(split)[1])
        return resampled_size(np.asarray(stored.class_counts), sampling)

    def load_split(self, split: str, *, resample: bool = True) -> tuple[Features, np.ndarray]:
        """Read one split, checking every shard against its recorded checksum.

        Returns:
            ``(x, y)``: ``x`` an array, or for tables a dict of one array per source column
            (numbers float32 with NaN where missing, everything else strings) ready to feed the
            model's raw inputs; ``y`` class indices (int64) or targets in their own units.
            The training split comes over- or under-sampled when the recipe asked for it
            (``resample=False`` reads it as stored).

        Raises:
            DataError: the split is unknown, or a shard is missing or changed since prepare.
        """
        entry = self.split_entry(split)
        xs: list[Any] = []
        ys: list[np.ndarray] = []
        for shard in entry.shards:
            x, y = self.read_shard(shard)
            xs.append(x)
            ys.append(y)
        if isinstance(xs[0], dict):
            x_all: Features = {k: np.concatenate([part[k] for part in xs]) for k in xs[0]}
        else:
            x_all = np.concatenate(xs)
        y_all = np.concatenate(ys)
        sampling = self.manifest.sampling
        if resample and split == "train" and sampling != Sampling.NONE:
            rows = resample_rows(y_all, sampling, self.manifest.seed)
            x_all = (
                {k: v[rows] for k, v in x_all.items()} if isinstance(x_all, dict) else x_all[rows]
            )
            y_all = y_all[rows]
        return x_all, y_all

    def split_entry(self, split: str) -> Split:
        """The manifest's entry for ``split``.

        Raises:
            DataError: the dataset has no such split.
        """
        entry = self.manifest.splits.get(split)
        if entry is None:
            raise DataError(
                f"The prepared dataset {self.folder} has no '{split}' split (it has: "
                f"{', '.join(self.manifest.splits)})."
            )
        return entry

    def read_shard(self, shard: Shard, *, strings: type = object) -> tuple[Features, np.ndarray]:
        """One shard's examples and targets, as ``load_split`` returns a split's.

        ``strings=bytes`` gives a table's string columns as fixed-width NumPy bytes (``S``)
        where that is not much larger (``fixed_bytes``): no Python object per value, so a
        streamed batch is gathered and handed to TensorFlow without the GIL per string.

        The file is checked against its recorded SHA-256 the first time this process reads it;
        later reads (a streamed training's next epochs) check only that its size and
        modification time are those it had then, which costs nothing beside the read. Safe to
        call from several threads.

        Raises:
            DataError: the shard is missing or changed since prepare.
        """
        blob = self._verified_bytes(shard)
        if shard.file.endswith(f".{ShardLayout.ARROW.value}"):
            return self._read_table(blob, strings)
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            return arrays["x"], arrays["y"]

    def read_targets(self, shard: Shard) -> np.ndarray:
        """One shard's targets alone (a table's target column is read, not its features).

        Raises:
            DataError: the shard is missing or changed since prepare.
        """
        blob = self._verified_bytes(shard)
        if not shard.file.endswith(f".{ShardLayout.ARROW.value}"):
            with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
                return np.asarray(arrays["y"])
        table = pa.ipc.open_file(pa.BufferReader(blob)).read_all()
        return _targets(table)[1]

    def _verified_bytes(self, shard: Shard) -> bytes:
        path = self.folder / shard.file
        try:
            blob = path.read_bytes()
            stat = path.stat()
        except OSError:
            raise DataError(
                f"Shard {path} listed in {MANIFEST_FILE} is missing. The prepared dataset is "
                f"incomplete; rebuild it with `dltrain prepare --force`."
            ) from None
        seen = (stat.st_size, stat.st_mtime_ns, shard.sha256)
        if _VERIFIED.get(path) == seen and len(blob) == stat.st_size:
            return blob
        if hashlib.sha256(blob).hexdigest() != shard.sha256:
            raise DataError(
                f"Shard {path} changed since `dltrain prepare` wrote it (its checksum no "
                f"longer matches {MANIFEST_FILE}). dltrain will not train or evaluate on data "
                f"it cannot vouch for; rebuild it with `dltrain prepare --force`."
            )
        _VERIFIED[path] = seen
        return blob

    def _read_table(self, blob: bytes, strings: type = object) -> tuple[Features, np.ndarray]:
        table = pa.ipc.open_file(pa.BufferReader(blob)).read_all()
        targets, y = _targets(table)
        convert = column_array if strings is object else column_bytes
        columns = {n: convert(table[n]) for n in table.column_names if n not in targets}
        features = self.manifest.features
        if features.kind == FeatureKind.TABLE:
            return columns, y
        assert features.kind == FeatureKind.TEXT  # the other kinds are stored as arrays
        return columns[features.column], y


# Shards this process checked against their SHA-256: path -> (size, mtime_ns, the checksum).
# Dict reads and writes are atomic under the GIL, so reader threads may share it.
_VERIFIED: dict[Path, tuple[int, int, str]] = {}


def _targets(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """A shard table's target column names and its targets (one column, or stacked)."""
    targets = [n for n in table.column_names if n.startswith(TARGET_COLUMN)]
    if targets == [TARGET_COLUMN]:
        return targets, table[TARGET_COLUMN].to_numpy()
    ordered = sorted(targets, key=_target_index)
    return targets, np.stack([table[n].to_numpy() for n in ordered], axis=1)


def _target_index(name: str) -> int:
    return int(name.removeprefix(TARGET_COLUMN) or 0)


def _rows_per_class(counts: np.ndarray, sampling: Sampling) -> int:
    """Every class's rows after resampling: the largest class's count, or the smallest's."""
    present = counts[counts > 0]  # a class the split lacks cannot be drawn from
    return int(present.max() if sampling == Sampling.OVERSAMPLE else present.min())


def resampled_size(counts: np.ndarray, sampling: Sampling) -> int:
    """How many rows ``resample_rows`` returns for a split with these class counts.

    Args:
        counts: examples per class (classes with none are left out, as they are when resampling).
        sampling: over- or under-sampling.

    Returns:
        The resampled split's size.
    """
    return _rows_per_class(counts, sampling) * int(np.count_nonzero(counts))


def resample_rows(y: np.ndarray, sampling: Sampling, seed: int) -> np.ndarray:
    """Row indices that over- or under-sample ``y``'s classes to the largest/smallest count.

    Seeded, so a run is reproducible; the rows come in random order.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    target = _rows_per_class(counts, sampling)
    rows = []
    for cls, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(y == cls)
        if count >= target:
            rows.append(rng.choice(members, size=target, replace=False))
        else:
            extra = rng.choice(members, size=target - count, replace=True)
            rows.append(np.concatenate([members, extra]))
    out = np.concatenate(rows)
    rng.shuffle(out)
    return out


def open_store(folder: Path) -> PreparedDataset:
    """Open the prepared dataset in ``folder``.

    Raises:
        DataError: there is none, or its manifest is unreadable or from another version.
    """
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise DataError(
            f"No prepared dataset at {folder} (no {MANIFEST_FILE}). Run `dltrain prepare` with the "
            f"same recipe first; it writes data/<recipe name>/."
        )
    return PreparedDataset(folder=folder, manifest=read_manifest(path))
