"""Data: raw sources, splits, the prepared store and its manifest, tf.data input pipelines."""
