"""A run's training and validation batches: read whole into memory, or streamed from the shards.

``train.input`` chooses (``auto``: by the splits' size, data/streaming.py ``choose_input``); the
choice, and under ``TF_CONFIG`` which training and validation shard files each worker reads,
goes into run.json.
"""

from __future__ import annotations

import json
import os

from dltrain.backend import tf
from dltrain.data.pipeline import make_dataset
from dltrain.data.shares import ShardPolicy, WorkerShare, validation_share, worker_files
from dltrain.data.store import PreparedDataset
from dltrain.data.streaming import (
    MEMORY_MAX_SHARD_BYTES,
    InputPath,
    SplitStream,
    StreamRequest,
    choose_input,
    shard_bytes,
    to_dataset,
    worth_caching,
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
        record = InputRecord(
            path=path.value, reason=reason, shard_policy=policy, validation_policy=policy
        )
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
    global batch, and its own validation files once (every ``n``-th row where there are fewer
    files than workers), padded to the same steps as the others: the multi-worker loop sums
    every worker's metric totals and counts, so the validation metrics are the whole split's.
    Validation, read in the same order every epoch, stays in memory after the first when its
    shards are small (``worth_caching``).
    """
    cluster = plan.devices.cluster
    spec, dataset, seed = plan.spec, plan.dataset, plan.recipe.seed
    index = worker_index(cluster) if cluster is not None else 0
    worker = (
        WorkerShare(index, cluster.num_workers, plan.steps_per_epoch)
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
    val_share = (
        validation_share(dataset, "validation", spec.batch_size, index, cluster.num_workers)
        if cluster is not None
        else None
    )
    val_request = StreamRequest(
        split="validation",
        batch_size=spec.batch_size,
        shuffle=False,
        seed=seed,
        labels=plan.hooks.labels,
        worker=val_share,
        cache=worth_caching(dataset, "validation"),
    )
    val_stream = SplitStream(dataset, val_request)
    train, validation = to_dataset(train_stream), to_dataset(val_stream)
    if worker is not None:
        train, validation = own_batches(train), own_batches(validation)
    record = InputRecord(
        path=InputPath.STREAM.value,
        reason=reason,
        shard_policy=train_stream.policy.value,
        train_shards=train_stream.files,
        worker_shards=worker_files(dataset, "train", worker) if worker is not None else None,
        validation_policy=val_stream.policy.value,
        validation_shards=val_stream.files,
        validation_cached=val_request.cache,
        worker_validation_shards=(
            worker_files(dataset, "validation", val_share) if val_share is not None else None
        ),
    )
    return train, validation, record


def own_batches(batches: tf.data.Dataset) -> tf.data.Dataset:
    """Mark a worker's own batches (its files, at its share of the global batch) as such.

    The strategy must not shard them again: training/multiworker.py ``distribute`` reads the
    auto-shard policy ``OFF`` as that.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return batches.with_options(options)


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
