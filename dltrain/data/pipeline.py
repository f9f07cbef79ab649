"""tf.data input pipelines over prepared splits."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltrain.backend import tf


def make_dataset(
    x: np.ndarray | dict[str, np.ndarray],
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
) -> tf.data.Dataset:
    """Batches of (examples, labels), reshuffled every epoch when ``shuffle``.

    ``x`` is an array, or a dict of one array per table column (numbers, or strings as object
    arrays), as ``PreparedDataset.load_split`` returns them.

    The split is already in memory, so we shuffle indices and gather whole batches: one op per
    batch instead of one per example, and no copy of the data inside a shuffle buffer.
    """
    num_examples = len(y)
    features: Any = (
        {name: _constant(values) for name, values in x.items()}
        if isinstance(x, dict)
        else _constant(x)
    )
    labels = tf.constant(y)
    indices = tf.data.Dataset.range(num_examples)
    if shuffle:
        indices = indices.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)

    def gather(idx: tf.Tensor) -> tuple[Any, tf.Tensor]:
        if isinstance(features, dict):
            return {k: tf.gather(v, idx) for k, v in features.items()}, tf.gather(labels, idx)
        return tf.gather(features, idx), tf.gather(labels, idx)

    batches = indices.batch(batch_size).map(
        gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def _constant(values: np.ndarray) -> tf.Tensor:
    if values.dtype == object or values.dtype.kind == "U":
        return tf.constant(values.astype(object), dtype=tf.string)
    return tf.constant(values)
