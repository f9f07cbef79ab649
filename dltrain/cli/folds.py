"""``dltrain train --folds K``: run the cross-validation and show its folds, mean ± sd."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dltrain.console import write_json
from dltrain.recipe.durations import format_duration

if TYPE_CHECKING:
    from dltrain.data.folds import Fold
    from dltrain.recipe import LoadedRecipe
    from dltrain.training.crossval import CrossValidation


def train_folds(
    loaded: LoadedRecipe, workdir: Path, console: Console, recipe: str | None, json_: bool
) -> None:
    """Cross-validate the recipe and report it on stderr (and with ``json_``, on stdout).

    Args:
        loaded: the recipe, ``train.folds`` set.
        workdir: the folder holding data/ and runs/.
        console: where the human output goes.
        recipe: ``--recipe`` as typed, for the next command it suggests.
        json_: write the result as one JSON document on stdout.
    """
    from dltrain.training.crossval import FoldOptions, cross_validate

    def announce(fold: Fold, num_folds: int) -> None:
        console.print(
            f"[bold]Fold {fold.number}/{num_folds}[/]: training on {len(fold.train):,} "
            f"examples, holding out {len(fold.held_out):,}",
            highlight=False,
        )

    result = cross_validate(loaded, workdir, console, FoldOptions(announce=announce))
    console.print(folds_table(result))
    for note in result.notes:
        console.print(f"[yellow]Note:[/] {note}", highlight=False)
    for warning in result.warnings:
        console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False)
    console.print(
        f"[green]Saved[/] {result.run_dir}: one model averaging the {len(result.folds)} fold "
        f"models, in {format_duration(result.seconds)}. Next: dltrain evaluate"
        f"{' --recipe ' + recipe if recipe else ''}",
        highlight=False,
    )
    if json_:
        write_json(result.to_json())


def folds_table(result: CrossValidation) -> Table:
    """Each fold's sizes and held-out metrics, and the metrics' mean ± sd, as a table.

    One row per metric and one column per fold: a binary classifier's eight metrics stay
    readable in 80 columns, as they would not side by side.

    Args:
        result: what ``cross_validate`` returned.
    """
    folds = result.folds
    table = Table(
        title=f"Cross-validation: {len(folds)} {result.method.value} folds, held-out metrics",
        title_justify="left",
    )
    table.add_column("", justify="left", no_wrap=True)
    for fold in folds:
        table.add_column(f"fold {fold.number}", justify="right")
    table.add_column("mean ± sd", justify="right", no_wrap=True)
    table.add_row("train", *(f"{f.train_examples:,}" for f in folds), "")
    table.add_row("held out", *(f"{f.held_out_examples:,}" for f in folds), "")
    table.add_row("epoch", *(str(f.epoch) for f in folds), "", end_section=True)
    for name in result.mean:
        table.add_row(
            name,
            *(f"{f.metrics[name]:.4f}" for f in folds),
            f"{result.mean[name]:.4f} ± {result.sd[name]:.4f}",
        )
    return table
