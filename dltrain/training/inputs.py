"""A run's training and validation batches: read whole into memory, or streamed from the shards.

``train.input`` chooses (``auto``: by the splits' size, data/streaming.py ``choose_input``); the
choice, and under ``TF_CONFIG`` which shard files each worker reads, goes into run.json.
"""

from __future__ import annotations

import json
import os

from dltrain.backend import tf
from dltrain.data.pipeline import make_dataset
from dltrain.data.store import PreparedDataset
from dltrain.data.streaming import (
    MEMORY_MAX_SHARD_BYTES,
    InputPath,
    ShardPolicy,
    SplitStream,
    StreamRequest,
    WorkerShare,
    assign_shards,
    choose_input,
    shard_bytes,
    to_dataset,
)
from dltrain.errors import OutOfMemory
from dltrain.run_info import InputRecord
from dltrain.training.device import Cluster
from dltrain.training.plan import RunPlan


def input_batches(plan: RunPlan) -> tuple[tf.data.Dataset, tf.data.Dataset, InputRecord]:
    """The run's training and validation batches, and how they are read.

    Args:
        plan: the run's plan.

    Returns:
        Training batches reshuffled every epoch, validation batches in order, and the record
        run.json keeps.

    Raises:
        DataError: a shard is missing or changed, or the workers outnumber the shards.
    """
    path, reason = choose_input(plan.dataset, plan.spec.input)
    if path is InputPath.MEMORY:
        train, validation = memory_batches(plan)
        policy = ShardPolicy.DATA if plan.devices.cluster is not None else ShardPolicy.NONE
        record = InputRecord(path=path.value, reason=reason, shard_policy=policy)
    else:
        train, validation, record = streamed_batches(plan, reason)
    # the family's own batches (a CNN's MixUp and CutMix blend training batches)
    hooks, manifest = plan.hooks, plan.dataset.manifest
    seed = plan.recipe.seed + plan.initial_epoch
    train = hooks.batches(train, manifest, training=True, seed=seed)
    validation = hooks.batches(validation, manifest, training=False, seed=plan.recipe.seed)
    return train, validation, record


def streamed_batches(
    plan: RunPlan, reason: str
) -> tuple[tf.data.Dataset, tf.data.Dataset, InputRecord]:
    """The training and validation splits streamed from their shards (data/streaming.py).

    Under ``TF_CONFIG`` each worker streams its own training shard files at its share of the
    global batch; validation is read whole by every worker, which keeps its share of each batch.
    """
    cluster = plan.devices.cluster
    spec, dataset, seed = plan.spec, plan.dataset, plan.recipe.seed
    worker = (
        WorkerShare(worker_index(cluster), cluster.num_workers, plan.steps_per_epoch)
        if cluster is not None
        else None
    )
    request = StreamRequest(
        split="train",
        batch_size=spec.batch_size,
        shuffle=spec.shuffle,
        seed=seed + plan.initial_epoch,  # a resumed run reshuffles anew, as in memory
        labels=plan.hooks.labels,
        worker=worker,
    )
    train_stream = SplitStream(dataset, request)
    train = to_dataset(train_stream)
    if worker is not None:
        # this worker's own files, batched at its share: the strategy must not shard it again
        # (training/multiworker.py ``distribute`` reads the policy OFF as that)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        train = train.with_options(options)
    validation = to_dataset(
        SplitStream(
            dataset,
            StreamRequest(
                split="validation",
                batch_size=spec.batch_size,
                shuffle=False,
                seed=seed,
                labels=plan.hooks.labels,
            ),
        )
    )
    shards = [s.file for s in dataset.split_entry("train").shards]
    shares = assign_shards(len(shards), worker.count) if worker is not None else None
    record = InputRecord(
        path=InputPath.STREAM.value,
        reason=reason,
        shard_policy=(ShardPolicy.FILE if worker is not None else ShardPolicy.NONE).value,
        train_shards=train_stream.files,
        worker_shards=[[shards[i] for i in m] for m in shares] if shares is not None else None,
    )
    return train, validation, record


def memory_batches(plan: RunPlan) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The training and validation splits read whole into memory, then batched."""
    spec, dataset, hooks = plan.spec, plan.dataset, plan.hooks
    try:
        train_x, train_y = dataset.load_split("train")
        val_x, val_y = dataset.load_split("validation")
    except MemoryError:
        raise splits_too_large(dataset) from None
    # keyed as the model's inputs are (a table's input names; manifest.py)
    train_x, val_x = dataset.manifest.model_inputs(train_x), dataset.manifest.model_inputs(val_x)
    seed = plan.recipe.seed + plan.initial_epoch
    train = make_dataset(
        train_x, hooks.labels(train_y), spec.batch_size, shuffle=spec.shuffle, seed=seed
    )
    validation = make_dataset(
        val_x, hooks.labels(val_y), spec.batch_size, shuffle=False, seed=plan.recipe.seed
    )
    return train, validation


def splits_too_large(dataset: PreparedDataset) -> OutOfMemory:
    """The error of training and validation splits that do not fit in memory, naming the fix."""
    examples = sum(dataset.num_examples(s) for s in ("train", "validation"))
    size = shard_bytes(dataset, ("train", "validation"))
    return OutOfMemory(
        f"Reading the training and validation splits into memory (train.input: memory) ran "
        f"out of memory: {examples:,} examples, {size / 1e6:,.0f} MB of shards on disk and "
        f"more once decoded. Expected splits that fit in the memory this process may use; set "
        f"`train.input: stream` (or auto, which streams past {MEMORY_MAX_SHARD_BYTES / 1e6:,.0f}"
        f" MB of shards) to read them shard by shard every epoch in flat memory."
    )


def worker_index(cluster: Cluster) -> int:
    """This worker's place among all workers, 0 to n-1: the chief first, then the workers.

    Every worker computes the same numbering from ``TF_CONFIG``, so their shard files are
    disjoint and together the whole split.
    """
    if cluster.task_type == "chief":
        return 0
    named = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return cluster.task_index + (1 if named.get("chief") else 0)
