"""What the live progress display costs a training epoch on a terminal.

Two measurements, in one run, alternating A/B rounds:
1. the display's own per-batch cost (``on_train_batch_end`` on a real model, drawing to a
   terminal console that writes to /dev/null), reading the stats every batch (as before) against
   at Rich's refresh rate (as now);
2. the epoch time of the reference CNN on 28x28 images (batch 128) with the display against
   without it.

    .venv/bin/python benchmarks/progress.py [--rounds 3] [--steps 120] [--write-results]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

import numpy as np
from rich.console import Console

from dltrain.backend import keras
from dltrain.training import callbacks
from dltrain.training.callbacks import EpochStats, ProgressDisplay


def terminal() -> Console:
    return Console(file=open(os.devnull, "w"), force_terminal=True, width=120)  # noqa: SIM115


def reference_cnn() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def per_batch_microseconds(model: keras.Model, stats_seconds: float, calls: int) -> float:
    """The display's cost per batch, on its own."""
    callbacks.STATS_SECONDS = stats_seconds
    display = ProgressDisplay(terminal(), epochs=1, steps_per_epoch=calls, batch_size=128)
    display.set_model(model)
    display.on_train_begin()
    display.on_epoch_begin(0)
    logs = {"loss": 0.5, "accuracy": 0.9}
    started = time.perf_counter()
    for batch in range(calls):
        display.on_train_batch_end(batch, logs)
    seconds = time.perf_counter() - started
    display.on_train_end()
    return seconds / calls * 1e6


def epoch_seconds(model: keras.Model, x: np.ndarray, y: np.ndarray, display: bool) -> float:
    shown = [ProgressDisplay(terminal(), epochs=1, steps_per_epoch=len(x) // 128, batch_size=128)]
    started = time.perf_counter()
    model.fit(
        x,
        y,
        batch_size=128,
        epochs=1,
        verbose=0,
        callbacks=[EpochStats(), *(shown if display else [])],
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=120, help="batches per timed epoch")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.steps * 128, 28, 28, 1)).astype("float32") / 255
    y = rng.integers(0, 10, len(x))
    model = reference_cnn()
    epoch_seconds(model, x[:1280], y[:1280], display=False)  # trace and warm up
    every, refresh, plain, shown = [], [], [], []
    for _ in range(args.rounds):
        every.append(per_batch_microseconds(model, 0.0, 2000))
        refresh.append(per_batch_microseconds(model, 0.1, 2000))
        plain.append(epoch_seconds(model, x, y, display=False))
        shown.append(epoch_seconds(model, x, y, display=True))
    callbacks.STATS_SECONDS = 0.1
    step_ms = statistics.median(plain) / args.steps * 1e3
    rows = [
        (
            "display per batch, stats read every batch (before)",
            f"{statistics.median(every):,.0f} µs",
        ),
        (
            "display per batch, stats read every 0.1 s (now)",
            f"{statistics.median(refresh):,.0f} µs",
        ),
        ("reference CNN, one training step (batch 128)", f"{step_ms:,.1f} ms"),
        (
            "display's share of a step (now)",
            f"{statistics.median(refresh) / 1e3 / step_ms:.2%}",
        ),
        (
            "epoch with display / without (alternating, median)",
            f"{statistics.median(shown) / statistics.median(plain):.3f}",
        ),
    ]
    load = os.getloadavg()[0]
    section = [
        f"## Progress display cost on a terminal ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`.venv/bin/python benchmarks/progress.py --rounds {args.rounds} --steps {args.steps}`, "
        f"2 cores, 1-minute load average {load:.1f}; {args.rounds} alternating rounds, medians.",
        "",
        "| measure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
    ]
    print("\n".join(section))
    if args.write_results:
        from results import write_section

        write_section("\n".join(section) + "\n", "## Progress display cost on a terminal")


if __name__ == "__main__":
    main()
