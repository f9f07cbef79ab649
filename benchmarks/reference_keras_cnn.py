"""The hand-written Keras script that dltrain is measured against, on Fashion-MNIST.

This is deliberately the plain script someone would write without dltrain: read the IDX files
with NumPy, scale the pixels to [0, 1], one-hot the labels, build a small CNN, and call
``model.fit`` on the arrays with ``validation_split=0.1`` (54k train / 6k validation, the same
work per epoch as dltrain's split), then ``model.evaluate`` on the 10k test set.

Each epoch's wall time is taken exactly as dltrain's ``EpochStats`` takes it (``perf_counter``
in ``on_epoch_begin`` / ``on_epoch_end``, so it includes validation). ``fit`` runs with
``verbose=0`` and no per-batch callbacks, the leanest loop Keras offers: the baseline is strict.

    .venv/bin/python benchmarks/reference_keras_cnn.py --epochs 3 --json-out ref.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
BATCH_SIZE = 128
LEARNING_RATE = 0.001
VALIDATION_SPLIT = 0.1
NUM_CLASSES = 10


# --- data -------------------------------------------------------------------------------------


def read_idx(path: Path, offset: int) -> np.ndarray:
    """The uint8 payload of a gzipped IDX file (header: 16 bytes for images, 8 for labels)."""
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def load_fashion_mnist(
    folder: Path,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)): images (N, 28, 28, 1) float32 in [0, 1],
    labels one-hot (N, 10) float32."""

    def split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", offset=16)
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", offset=8)
        x = images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
        y = keras.utils.to_categorical(labels, NUM_CLASSES).astype("float32")
        return x, y

    return split("train"), split("t10k")


# --- model ------------------------------------------------------------------------------------


def build_model() -> keras.Model:
    """Conv(32) → pool → Conv(64) → pool → Dense(64) → Dropout(0.5) → softmax, 'valid' padding."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Conv2D(64, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# --- callbacks --------------------------------------------------------------------------------


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch, measured like dltrain's EpochStats; one line per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        stats = "  ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
        print(f"epoch {epoch + 1}  {stats}  {self.seconds[-1]:.1f}s", file=sys.stderr, flush=True)


class TestAccuracy(keras.callbacks.Callback):
    """Test-set accuracy after every epoch. Listed after EpochTimer, so not part of epoch time."""

    def __init__(self, x: np.ndarray, y: np.ndarray, stop_at: float | None = None) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.stop_at = stop_at
        self.accuracies: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        result = self.model.evaluate(
            self.x, self.y, batch_size=BATCH_SIZE, verbose=0, return_dict=True
        )
        self.accuracies.append(float(result["accuracy"]))
        if self.stop_at is not None and self.accuracies[-1] >= self.stop_at:
            self.model.stop_training = True  # the time-to-accuracy benchmark has its answer


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Fashion-MNIST IDX folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--limit", type=int, default=None, help="train on the first N examples only (smoke tests)"
    )
    parser.add_argument(
        "--eval-every-epoch",
        action="store_true",
        help="also record the test accuracy after every epoch (e.g. to find when it reaches 0.91)",
    )
    parser.add_argument(
        "--stop-at-accuracy",
        type=float,
        default=None,
        help="with --eval-every-epoch: stop once the test accuracy reaches this",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="write the result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]

    model = build_model()
    timer = EpochTimer()
    callbacks: list[keras.callbacks.Callback] = [timer]
    test_accuracy = (
        TestAccuracy(x_test, y_test, args.stop_at_accuracy) if args.eval_every_epoch else None
    )
    if test_accuracy is not None:
        callbacks.append(test_accuracy)

    trained_on = math.floor(len(x_train) * (1 - VALIDATION_SPLIT))  # how Keras splits
    fit_started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=args.epochs,
        validation_split=VALIDATION_SPLIT,
        callbacks=callbacks,
        verbose=0,
    )
    fit_seconds = time.perf_counter() - fit_started
    test = model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, verbose=0, return_dict=True)

    result: dict[str, Any] = {
        "contender": "reference_keras_cnn",
        "epochs": args.epochs,
        "seed": args.seed,
        "train_examples": trained_on,
        "validation_examples": len(x_train) - trained_on,
        "test_examples": len(x_test),
        "epoch_seconds": timer.seconds,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "test_loss": float(test["loss"]),
        "test_accuracy": float(test["accuracy"]),
        "fit_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - started,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if test_accuracy is not None:
        result["test_accuracy_per_epoch"] = test_accuracy.accuracies
    text = json.dumps(result, indent=2)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return result


if __name__ == "__main__":
    main()
