"""The one place TensorFlow and Keras are imported, quietly.

TensorFlow's C++ runtime writes start-up notices (oneDNN, CUDA probing, CPU features) straight to
file descriptor 2 before its logging is configured, so ``TF_CPP_MIN_LOG_LEVEL`` alone cannot hide
them. We point fd 2 at /dev/null for the import and the first device query, then restore it.
Set ``DLTRAIN_DEBUG=1`` to see everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    if os.environ.get("DLTRAIN_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _silenced_stderr():
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    GPUS = tf.config.list_physical_devices("GPU")

__all__ = ["GPUS", "keras", "tf"]
