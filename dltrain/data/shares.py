"""How the workers of a ``TF_CONFIG`` cluster share a streamed split's shard files.

Every worker computes every other worker's share from the manifest alone, so their files are
disjoint and together the whole split, and all of them run the same number of steps (each step's
collective operations meet only if every worker takes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dltrain.data.store import PreparedDataset
from dltrain.errors import DataError


class ShardPolicy(StrEnum):
    """How the workers of a ``TF_CONFIG`` cluster share a split."""

    NONE = "none"  # one process reads everything
    FILE = "file"  # each worker reads its own shard files
    ROW = "row"  # each worker reads every file and keeps rows i, i+n, … (fewer files than workers)
    DATA = "data"  # each worker reads everything and keeps its share of every batch


@dataclass(frozen=True)
class WorkerShare:
    """One worker's part of a streamed split: its shard files and the batches it yields.

    Attributes:
        index: the worker's index in the cluster.
        count: the number of workers.
        steps: batches per epoch, the same on every worker (their steps all-reduce together).
        once: every row of this worker's share once, then empty batches up to ``steps``
            (validation: each row counted once over all workers); else the worker goes round
            its files until ``steps`` batches (training).
    """

    index: int
    count: int
    steps: int
    once: bool = False


def assign_shards(num_shards: int, num_workers: int) -> list[list[int]]:
    """Each worker's shard indices: round robin, so every worker's rows differ by one shard.

    Args:
        num_shards: the split's shards.
        num_workers: the cluster's workers.

    Returns:
        One list of shard indices per worker; disjoint, together every shard.

    Raises:
        DataError: fewer shards than workers (a worker would read nothing).
    """
    if num_shards < num_workers:
        raise DataError(
            f"The training split has {num_shards} shard file(s) but TF_CONFIG has "
            f"{num_workers} workers, and each worker streams its own files. Prepare again with "
            f"smaller shards (--set data.shard_rows=N, so that there are at least "
            f"{num_workers}), or read the split in memory (--set train.input=memory)."
        )
    return [list(range(w, num_shards, num_workers)) for w in range(num_workers)]


def split_policy(num_shards: int, worker: WorkerShare | None) -> ShardPolicy:
    """How this process reads a split of ``num_shards`` files: all of it (one process), its own
    files, or, for validation with fewer files than workers, every ``n``-th row."""
    if worker is None:
        return ShardPolicy.NONE
    if worker.once and num_shards < worker.count:
        return ShardPolicy.ROW
    return ShardPolicy.FILE


def worker_files(dataset: PreparedDataset, split: str, share: WorkerShare) -> list[list[str]]:
    """Every worker's shard files of ``split`` by worker index, as run.json records them."""
    files = [s.file for s in dataset.split_entry(split).shards]
    if split_policy(len(files), share) is ShardPolicy.ROW:
        return [list(files) for _ in range(share.count)]
    return [[files[i] for i in mine] for mine in assign_shards(len(files), share.count)]


def validation_share(
    dataset: PreparedDataset, split: str, batch_size: int, index: int, count: int
) -> WorkerShare:
    """Worker ``index``'s share of a split every worker evaluates together (validation).

    Each worker reads its own files (or every ``count``-th row where the split has fewer files
    than workers) once, at its share of the global batch; ``steps`` is the most batches any
    worker has, so all run the same steps (the others pad with empty batches, which count for
    nothing in a metric's sums).

    Args:
        dataset: the prepared dataset.
        split: the split's name.
        batch_size: the global batch.
        index: this worker's index.
        count: the number of workers.
    """
    shards = dataset.split_entry(split).shards
    if len(shards) < count:
        total = sum(s.num_examples for s in shards)
        rows = [len(range(w, total, count)) for w in range(count)]
    else:
        mine = assign_shards(len(shards), count)
        rows = [sum(shards[i].num_examples for i in m) for m in mine]
    steps = max(-(-r // max(batch_share(batch_size, w, count), 1)) for w, r in enumerate(rows))
    return WorkerShare(index=index, count=count, steps=steps, once=True)


def batch_share(batch_size: int, index: int, count: int) -> int:
    """Worker ``index``'s rows of each global batch: ``1/count`` of it, the first ones one more."""
    return batch_size // count + (1 if index < batch_size % count else 0)
