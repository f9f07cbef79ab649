"""tf.data input pipelines over prepared splits."""

from __future__ import annotations

import numpy as np

from dltrain.backend import tf


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int
) -> tf.data.Dataset:
    """Batches of (examples, labels), reshuffled every epoch when ``shuffle``.

    The split is already in memory, so we shuffle indices and gather whole batches: one op per
    batch instead of one per example, and no copy of the data inside a shuffle buffer.
    """
    num_examples = len(x)
    features = tf.constant(x)
    labels = tf.constant(y)
    indices = tf.data.Dataset.range(num_examples)
    if shuffle:
        indices = indices.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(
        lambda idx: (tf.gather(features, idx), tf.gather(labels, idx)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return batches.prefetch(tf.data.AUTOTUNE)
