"""Batches streamed from the prepared shards, for splits larger than memory.

``load_split`` reads a whole split into NumPy arrays; ``stream_split`` reads it one shard file at
a time instead, every epoch, so memory holds a few shards whatever the split's size:

- the shards are read in an order drawn from the seed afresh every epoch, on a background
  thread (``data/prefetch.py``) two files ahead of the batching, each file checked against its
  SHA-256 the first time this process reads it (``PreparedDataset.read_shard``);
- shuffled, each shard's rows come in a random order and ``CYCLE_LENGTH`` shards are open at
  once, their rows interleaved one by one, so every batch mixes rows of several files; the
  shuffle's memory is bounded by those few shards, whatever the split's size;
- over- and under-sampling draw each class's rows shard by shard, with quotas that add up to
  the sizes ``resample_rows`` gives (``resample_quotas``), so an epoch has the batches the
  schedule was planned for;
- under ``TF_CONFIG`` each worker reads its own shard files (``WorkerShare``, ``assign_shards``)
  and yields the same number of batches as every other worker, each ``1/n`` of the global batch;
  for validation (``WorkerShare.once``) each worker reads its own files once, or every ``n``-th
  row where the split has fewer files than workers, and pads with empty batches to the count
  of the worker with the most, so all workers run the same steps and every row counts once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from dltrain.backend import tf
from dltrain.data.prefetch import prefetched
from dltrain.data.shares import (
    ShardPolicy,
    WorkerShare,
    assign_shards,
    batch_share,
    split_policy,
)
from dltrain.data.store import Features, PreparedDataset, _rows_per_class
from dltrain.errors import DataError
from dltrain.manifest import Sampling, Shard
from dltrain.recipe.choices import InputMode

# Shards read at once, their rows interleaved one by one: every batch mixes this many files.
CYCLE_LENGTH = 4
# Rows taken from the open shards per step of the interleave.
CHUNK_ROWS = 8_192
# Batches handed to TensorFlow at once (then cut apart inside it): each hand-over converts every
# column, so fewer and larger ones leave more of the GIL to training.
BLOCK_BATCHES = 16
# auto reads the splits into memory while their shards take at most this much disk together.
# Measured on the streaming benchmark's 1M-row mixed table (benchmarks/RESULTS.md,
# "Streaming"): 85 MB of training and validation shards, and train in memory peaked ~540 MB
# above the 712 MB that importing TensorFlow takes, ~6x the shards' bytes; so 100 MB of shards
# keeps a run near 1.3 GB, and anything larger streams.
MEMORY_MAX_SHARD_BYTES = 100_000_000
# A streamed split read in the same order every epoch (validation) stays in memory after its
# first pass while its shards take at most this much disk, so later epochs skip reading,
# decoding and handing it to TensorFlow again (the 1M-row table's: 9.4 MB of shards).
CACHE_MAX_SHARD_BYTES = 50_000_000


class InputPath(StrEnum):
    """Which input pipeline a run trained on, as run.json records it."""

    MEMORY = "memory"
    STREAM = "stream"


@dataclass(frozen=True)
class StreamRequest:
    """What to stream: a split, how it is batched and shuffled, and what labels it carries.

    Attributes:
        split: the split's name.
        batch_size: examples per batch; with ``worker``, the global batch shared by the workers.
        shuffle: draw a new shard order and mix rows every epoch (else rows come as stored).
        seed: the shuffle's seed.
        resample: over- or under-sample the training split as the recipe asks.
        labels: the labels the model learns, from a shard's targets (``TrainingHooks.labels``).
        worker: this worker's share, under ``TF_CONFIG``; None on one machine.
        cache: keep the batches in memory after the first pass and replay them every later
            epoch (a split read unshuffled, small enough: ``worth_caching``).
    """

    split: str
    batch_size: int
    shuffle: bool
    seed: int
    resample: bool = True
    labels: Callable[[np.ndarray], np.ndarray] | None = None
    worker: WorkerShare | None = None
    cache: bool = False


def worth_caching(dataset: PreparedDataset, split: str) -> bool:
    """Whether ``split``'s streamed batches may stay in memory (``CACHE_MAX_SHARD_BYTES``)."""
    return shard_bytes(dataset, (split,)) <= CACHE_MAX_SHARD_BYTES


def choose_input(
    dataset: PreparedDataset, mode: InputMode, splits: tuple[str, ...] = ("train", "validation")
) -> tuple[InputPath, str]:
    """The input path a run takes, and why, for the recipe's ``train.input``.

    Args:
        dataset: the prepared dataset.
        mode: ``auto`` decides by the size of the ``splits``' shards.
        splits: the splits read (training's two; evaluate's one).

    Returns:
        The path and a sentence saying why, for run.json.
    """
    if mode == InputMode.MEMORY:
        return InputPath.MEMORY, "train.input is memory"
    if mode == InputMode.STREAM:
        return InputPath.STREAM, "train.input is stream"
    if type(dataset) is not PreparedDataset:  # a fold's rows are in memory already
        return InputPath.MEMORY, "the data is a view held in memory (a cross-validation fold)"
    size = shard_bytes(dataset, splits)
    limit = MEMORY_MAX_SHARD_BYTES
    if size <= limit:
        return InputPath.MEMORY, f"train.input is auto: {size:,} bytes of shards <= {limit:,}"
    return InputPath.STREAM, f"train.input is auto: {size:,} bytes of shards > {limit:,}"


def head_rows(dataset: PreparedDataset, split: str, rows: int) -> tuple[Features, np.ndarray]:
    """The first ``rows`` examples of ``split`` as stored, reading only the shards they are in.

    For a sample (an export's check inputs) without reading a whole, maybe large, split.

    Raises:
        DataError: the split is unknown, or a shard is missing or changed.
    """
    parts: list[tuple[Features, np.ndarray]] = []
    held = 0
    for shard in dataset.split_entry(split).shards:
        if held >= rows and parts:
            break
        parts.append(dataset.read_shard(shard))
        held += len(parts[-1][1])
    x, y = parts[0]
    for part in parts[1:]:
        x, y = _join((x, y), part)
    return _slice(x, 0, rows), y[:rows]


def read_rows(
    dataset: PreparedDataset, split: str, rows: np.ndarray
) -> tuple[Features, np.ndarray]:
    """Rows ``rows`` (sorted indices) of ``split`` as stored, holding one shard at a time.

    What ``load_split(split, resample=False)`` indexed by ``rows`` gives, without the whole
    split in memory: a sample of a large split (the gradient-boosting baseline's).

    Raises:
        DataError: the split is unknown, or a shard is missing or changed.
    """
    parts: list[tuple[Features, np.ndarray]] = []
    start = 0
    for shard in dataset.split_entry(split).shards:
        stop = start + shard.num_examples
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo or not parts:  # the first shard always: it gives the columns' shapes
            x, y = dataset.read_shard(shard)
            picked = rows[lo:hi] - start
            parts.append((_take(x, picked), y[picked]))
        start = stop
    x, y = parts[0]
    for part in parts[1:]:
        x, y = _join((x, y), part)
    return x, y


def shard_bytes(dataset: PreparedDataset, splits: tuple[str, ...]) -> int:
    """The size on disk of the named splits' shards (0 for a file that is missing)."""
    total = 0
    for split in splits:
        for shard in dataset.split_entry(split).shards:
            path = dataset.folder / shard.file
            total += path.stat().st_size if path.is_file() else 0
    return total


def resample_quotas(counts: np.ndarray, sampling: Sampling) -> np.ndarray:
    """Rows of each class to draw from each shard, so the classes come out resampled.

    Each class's rows after resampling (``_rows_per_class``) are shared out over the shards in
    proportion to the class's rows in each, rounded by largest remainder: the totals are exactly
    those ``resample_rows`` gives the whole split, so ``num_examples`` stays true.

    Args:
        counts: rows per shard (axis 0) and class (axis 1).
        sampling: over- or under-sampling.

    Returns:
        Integer quotas of the same shape.
    """
    totals = counts.sum(axis=0)
    target = _rows_per_class(totals, sampling)
    quotas = np.zeros_like(counts)
    for cls in np.flatnonzero(totals):
        exact = counts[:, cls] * target / totals[cls]
        floor = np.floor(exact).astype(counts.dtype)
        short = int(target - floor.sum())
        order = np.argsort(-(exact - floor), kind="stable")  # largest remainders first
        floor[order[:short]] += 1
        quotas[:, cls] = floor
    return quotas


class SplitStream:
    """A split's shards, read and resampled one file at a time (see the module's docstring).

    Args:
        dataset: the prepared dataset.
        request: what to stream.
    """

    def __init__(self, dataset: PreparedDataset, request: StreamRequest) -> None:
        self.dataset = dataset
        self.request = request
        entry = dataset.split_entry(request.split)
        self.shards: list[Shard] = list(entry.shards)
        sampling = dataset.manifest.sampling
        self.sampling = sampling if request.resample and request.split == "train" else Sampling.NONE
        self.quotas = self._quotas() if self.sampling != Sampling.NONE else None
        worker = request.worker
        self.policy = split_policy(len(self.shards), worker)
        self.mine = (
            assign_shards(len(self.shards), worker.count)[worker.index]
            if worker is not None and self.policy is ShardPolicy.FILE
            else list(range(len(self.shards)))
        )
        # where each shard's rows start in the split (the row policy keeps every n-th row)
        self.offsets = np.cumsum([0, *(s.num_examples for s in self.shards)])
        if worker is not None and not worker.once and self.num_rows() == 0:
            # it would go round its files forever
            raise DataError(
                f"Worker {worker.index} of {worker.count} would read no training rows from "
                f"{self.dataset.folder} (its shard files hold none after resampling). Prepare "
                f"with fewer workers' worth of smaller shards (--set data.shard_rows=N), or "
                f"read the split in memory (--set train.input=memory)."
            )

    @property
    def files(self) -> list[str]:
        """This process's shard files."""
        return [self.shards[i].file for i in self.mine]

    def num_rows(self) -> int:
        """Rows one pass over this process's shards yields (resampled where asked)."""
        if self.quotas is not None:
            return int(self.quotas[self.mine].sum())
        worker = self.request.worker
        if self.policy is ShardPolicy.ROW and worker is not None:
            return len(range(worker.index, int(self.offsets[-1]), worker.count))
        return sum(self.shards[i].num_examples for i in self.mine)

    def batch_size(self) -> int:
        """This process's batch: the global batch, or this worker's share of it."""
        worker, size = self.request.worker, self.request.batch_size
        if worker is None:
            return size
        return max(batch_share(size, worker.index, worker.count), 1)

    def num_batches(self) -> int:
        """Batches one epoch reads: every row once (the last batch short), or a worker's steps.

        A worker evaluating its share once (``WorkerShare.once``) reads its rows' batches;
        ``to_dataset`` pads them with empty ones to ``steps``.
        """
        worker = self.request.worker
        if worker is not None and not worker.once:
            return worker.steps
        return -(-self.num_rows() // self.batch_size())

    def read(self, index: int, draw: int) -> tuple[Features, np.ndarray]:
        """Shard ``index``'s rows, resampled with draw ``draw``'s generator, labelled, keyed."""
        x, y = self.dataset.read_shard(self.shards[index], strings=bytes)
        worker = self.request.worker
        if self.policy is ShardPolicy.ROW and worker is not None:
            first = int(worker.index - self.offsets[index]) % worker.count
            x, y = _slice(x, first, None, worker.count), y[first :: worker.count]
        if self.quotas is not None:
            rng = np.random.default_rng([self.request.seed, draw, index])
            rows = _quota_rows(y, self.quotas[index], rng)
            x, y = _take(x, rows), y[rows]
        labels = self.request.labels
        return self.dataset.manifest.model_inputs(x), labels(y) if labels else y

    def epoch(self, epoch_seed: int) -> Iterator[tuple[Features, np.ndarray]]:
        """One epoch's batches; ``epoch_seed`` (drawn per epoch from the seed) orders them."""
        chunks: Iterator[tuple[Features, np.ndarray]]
        if self.request.worker is None or self.request.worker.once:
            chunks = self._pass(epoch_seed, 0)
            return _batches(chunks, self.batch_size(), None)
        # a worker runs as many passes over its files as its steps need, and stops there
        chunks = itertools.chain.from_iterable(self._pass(epoch_seed, p) for p in itertools.count())
        return _batches(chunks, self.batch_size(), self.num_batches())

    def _pass(self, epoch_seed: int, number: int) -> Iterator[tuple[Features, np.ndarray]]:
        """Rows of one pass over this process's shards, in chunks.

        Shuffled: each shard's rows in a random order (permuted on the reader thread), and
        ``CYCLE_LENGTH`` shards open at once, their rows interleaved one by one, so every batch
        mixes rows of several files. Each row is copied twice (the permutation, the interleave),
        never gathered again from a pool.
        """
        request = self.request
        draw = (int(epoch_seed) % (1 << 63)) * 1_000 + number  # SeedSequence: no negatives
        rng = np.random.default_rng([request.seed, draw, 1 + (request.worker or _ONE).index])
        order = [self.mine[i] for i in rng.permutation(len(self.mine))]
        if not request.shuffle:
            yield from prefetched((self.read(i, draw) for i in self.mine), depth=2)
            return

        def permuted(index: int) -> tuple[Features, np.ndarray]:
            x, y = self.read(index, draw)
            rows = np.random.default_rng([request.seed, draw, index, 7]).permutation(len(y))
            return _take(x, rows), y[rows]

        parts = prefetched((permuted(i) for i in order), depth=2)
        open_parts: list[tuple[Features, np.ndarray]] = []
        for part in itertools.chain(parts, [None]):
            if part is not None:
                if len(part[1]):
                    open_parts.append(part)
                if len(open_parts) < CYCLE_LENGTH:
                    continue
            while open_parts and (part is None or len(open_parts) >= CYCLE_LENGTH):
                step = min(CHUNK_ROWS // len(open_parts), *(len(p[1]) for p in open_parts))
                yield _interleave([(_slice(p[0], 0, step), p[1][:step]) for p in open_parts])
                open_parts = [
                    (_slice(p[0], step, None), p[1][step:]) for p in open_parts if len(p[1]) > step
                ]

    def _quotas(self) -> np.ndarray:
        num_classes = self.dataset.manifest.num_classes
        if not num_classes:
            raise DataError(
                f"The prepared dataset {self.dataset.folder} asks for over- or under-sampling "
                f"but has no classes; prepare it again with `dltrain prepare --force`."
            )
        counts = np.stack(
            [
                np.bincount(self.dataset.read_targets(s).astype(np.int64), minlength=num_classes)
                for s in self.shards
            ]
        )
        return resample_quotas(counts, self.sampling)


_ONE = WorkerShare(index=0, count=1, steps=0)


def stream_split(dataset: PreparedDataset, request: StreamRequest) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of (examples, labels) batches streamed from ``request.split``.

    Args:
        dataset: the prepared dataset.
        request: what to stream.

    Returns:
        Batches with a known cardinality (Keras sizes epochs by it), prefetched.

    Raises:
        DataError: a shard is missing or changed, or the workers outnumber the shards.
    """
    stream = SplitStream(dataset, request)
    return to_dataset(stream)


def to_dataset(stream: SplitStream) -> tf.data.Dataset:
    """``stream``'s epochs as a ``tf.data`` pipeline (a new epoch seed every iteration)."""
    request = stream.request
    x, y = stream.read(stream.mine[0], 0)  # the first file names the columns and their types
    signature = (_spec(x), _spec(y))

    def generate(epoch_seed: Any) -> Iterator[tuple[Any, np.ndarray]]:
        yield from stream.epoch(int(epoch_seed))

    seeds = tf.data.Dataset.random(seed=request.seed, rerandomize_each_iteration=True).take(1)
    if not request.shuffle:
        seeds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    batches = seeds.flat_map(
        lambda s: tf.data.Dataset.from_generator(generate, args=(s,), output_signature=signature)
    )
    batches = batches.rebatch(stream.batch_size())
    count = stream.num_batches()
    worker = request.worker
    if worker is not None and worker.once and worker.steps > count:
        # as many steps as the worker with the most rows: empty batches add nothing to a
        # metric's sums and counts, and keep the workers' collective steps in step
        empty = tf.nest.map_structure(
            lambda s: tf.reshape(tf.constant([], s.dtype), [0, *s.shape[1:]]), signature
        )
        batches = batches.concatenate(
            tf.data.Dataset.from_tensors(empty).repeat(worker.steps - count)
        )
        count = worker.steps
    # flat_map hides the length; Keras needs it to size epochs and predictions
    batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    if request.cache:
        if request.shuffle:
            raise ValueError("a shuffled stream draws new batches every epoch: it cannot cache")
        batches = batches.cache()
    return batches.prefetch(2)


def _spec(values: Features) -> Any:
    if isinstance(values, dict):
        return {name: _spec(column) for name, column in values.items()}
    if values.dtype == object or values.dtype.kind in "US":
        return tf.TensorSpec([None, *values.shape[1:]], tf.string)
    return tf.TensorSpec([None, *values.shape[1:]], tf.as_dtype(values.dtype))


def _quota_rows(y: np.ndarray, quota: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows of one shard holding ``quota[c]`` rows of each class ``c``, as ``resample_rows``."""
    rows = []
    for cls in np.flatnonzero(quota):
        members = np.flatnonzero(y == cls)
        wanted = int(quota[cls])
        if wanted <= len(members):
            rows.append(rng.choice(members, size=wanted, replace=False))
        else:
            extra = rng.choice(members, size=wanted - len(members), replace=True)
            rows.append(np.concatenate([members, extra]))
    out = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    rng.shuffle(out)
    return out


def _batches(
    chunks: Iterator[tuple[Features, np.ndarray]], batch_size: int, limit: int | None
) -> Iterator[tuple[Features, np.ndarray]]:
    """Cut chunks of rows into blocks of up to ``BLOCK_BATCHES`` whole batches.

    ``limit`` batches in all, or every row (the last batch short). ``to_dataset`` cuts the
    blocks into batches inside TensorFlow (``rebatch``): handing it a block at a time rather
    than a batch costs one conversion where it cost ``BLOCK_BATCHES``.
    """
    held: tuple[Features, np.ndarray] | None = None
    made = 0
    for chunk in chunks:
        held = chunk if held is None else _join(held, chunk)
        start = 0
        while (whole := (len(held[1]) - start) // batch_size) > 0:
            count = min(whole, BLOCK_BATCHES, limit - made if limit is not None else whole)
            stop = start + count * batch_size
            yield _slice(held[0], start, stop), held[1][start:stop]
            start, made = stop, made + count
            if limit is not None and made >= limit:
                return
        held = (_slice(held[0], start, None), held[1][start:])
    if limit is None and held is not None and len(held[1]):
        yield held


def _interleave(parts: list[tuple[Features, np.ndarray]]) -> tuple[Features, np.ndarray]:
    """Rows of equally long parts taken one from each in turn: a0, b0, c0, a1, b1, …"""
    if len(parts) == 1:
        return parts[0]

    def weave(arrays: list[np.ndarray]) -> np.ndarray:
        stacked = np.stack(arrays, axis=1)
        return stacked.reshape(-1, *stacked.shape[2:])

    xs = [p[0] for p in parts]
    first = xs[0]
    x: Features = (
        {k: weave([part[k] for part in xs]) for k in first}
        if isinstance(first, dict)
        else weave(xs)  # type: ignore[arg-type]
    )
    return x, weave([p[1] for p in parts])


def _join(
    a: tuple[Features, np.ndarray], b: tuple[Features, np.ndarray]
) -> tuple[Features, np.ndarray]:
    return _concat(a[0], b[0]), np.concatenate([a[1], b[1]])


def _concat(a: Features, b: Features) -> Features:
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return {k: np.concatenate([a[k], b[k]]) for k in a}
    assert not isinstance(b, dict)
    return np.concatenate([a, b])


def _take(x: Features, rows: np.ndarray) -> Features:
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


def _slice(x: Features, start: int, stop: int | None, step: int | None = None) -> Features:
    if isinstance(x, dict):
        return {k: v[start:stop:step] for k, v in x.items()}
    return x[start:stop:step]
