"""The progress display: live bars on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from dltrain.backend import keras
from dltrain.training.callbacks import EpochStats, ProgressDisplay


def fit_with_display(console: Console) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    display = ProgressDisplay(console, epochs=2, steps_per_epoch=4, batch_size=8)
    model.fit(
        np.zeros((32, 2)),
        np.zeros((32, 1)),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[EpochStats(), display],
    )


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    fit_with_display(Console(file=out, force_terminal=False, width=200))
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(
        "loss" in line and "learning_rate 0.01" in line and "samples/s" in line for line in lines
    )


def test_live_bars_on_a_terminal() -> None:
    out = io.StringIO()
    fit_with_display(Console(file=out, force_terminal=True, width=200))
    screen = out.getvalue()
    assert "batches" in screen or "epoch 1" in screen  # the batch bar was drawn
    assert "epoch 2/2" in screen and "ETA" in screen


def test_the_live_display_reads_the_learning_rate_at_the_refresh_rate(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dltrain.training import callbacks

    reads = []
    convert = keras.ops.convert_to_numpy
    monkeypatch.setattr(
        callbacks.keras.ops, "convert_to_numpy", lambda x: reads.append(1) or convert(x)
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    display = ProgressDisplay(
        Console(file=io.StringIO(), force_terminal=True),
        epochs=1,
        steps_per_epoch=400,
        batch_size=1,
    )
    model.fit(np.zeros((400, 2)), np.zeros((400, 1)), batch_size=1, verbose=0, callbacks=[display])
    # 400 batches in well under a second: a handful of reads (the first, each 0.1 s, the last),
    # where every batch read it before
    assert 1 <= len(reads) < 40
