"""The learning-curve picture of a run: loss, metrics and learning rate per epoch.

Training draws it when it ends; evaluate draws it for a run from before training did. Figures
are made with ``matplotlib.figure.Figure`` rather than pyplot, so no global state or GUI backend
is involved, and the file is written atomically.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from matplotlib.figure import Figure

from dltrain.atomic import atomic_path

_NOT_PLOTTED = ("epoch", "epoch_seconds")  # the x axis, and timing that is not a curve


def plot_learning_curves(
    history_csv: Path, png: Path, title: str = "Learning curves"
) -> Path | None:
    """Plot every logged quantity with its validation twin, one panel each, to ``png``.

    Args:
        history_csv: the run's history.csv (one row per epoch, as Keras's CSVLogger writes it).
        png: where to write the picture.
        title: the figure's title, such as the recipe and run id.

    Returns:
        ``png``, or ``None`` when the history is missing, unreadable or empty.
    """
    try:
        with history_csv.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return None
    if not rows:
        return None
    names = [k for k in rows[0] if k not in _NOT_PLOTTED and not k.startswith("val_")]
    if not names:
        return None
    epochs = [int(float(r["epoch"])) + 1 for r in rows] if "epoch" in rows[0] else None
    figure = Figure(figsize=(4.2 * len(names), 3.4))
    panels = figure.subplots(1, len(names), squeeze=False)[0]
    for axes, name in zip(panels, names, strict=True):
        plotted: list[float] = []
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in rows[0]:
                values = [_number(row[key]) for row in rows]
                plotted += values
                x = epochs or range(1, len(rows) + 1)
                axes.plot(x, values, style, marker="o", markersize=3, label=key)
        # a log axis needs a positive value (a rate unrecorded, or 0 on frozen epochs, has none)
        if name == "learning_rate" and any(v > 0 for v in plotted):
            axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(png) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    return png


def _number(cell: str | None) -> float:
    """A history cell as a float; an empty or non-numeric cell (no value that epoch) is NaN."""
    try:
        return float(cell) if cell not in (None, "") else math.nan
    except ValueError:
        return math.nan
