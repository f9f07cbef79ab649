"""The learning-curve picture of a run: loss, metrics and learning rate per epoch."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from dltrain.runs import atomic_path  # noqa: E402


def plot_learning_curves(history_csv: Path, png: Path, title: str) -> None:
    """Plot every logged quantity with its validation twin, one panel each, to ``png``."""
    with history_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(row["epoch"]) + 1 for row in rows]
    names = [k for k in rows[0] if k not in ("epoch", "epoch_seconds") and not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in rows[0]:
                values = [
                    float(row[key]) if row[key] not in ("", "nan") else float("nan") for row in rows
                ]
                ax.plot(epochs, values, style, marker="o", markersize=3, label=key)
        if name == "learning_rate":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
