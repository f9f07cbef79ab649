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
    """Each fold's held-out metrics, and their mean ± sd, as a table.

    Args:
        result: what ``cross_validate`` returned.
    """
    names = list(result.mean)
    table = Table(
        title=f"Cross-validation: {len(result.folds)} {result.method.value} folds, held-out "
        f"metrics",
        title_justify="left",
    )
    for column in ("fold", "train", "held out", "epoch", *names):
        table.add_column(column, justify="left" if column == "fold" else "right")
    for fold in result.folds:
        table.add_row(
            str(fold.number),
            f"{fold.train_examples:,}",
            f"{fold.held_out_examples:,}",
            str(fold.epoch),
            *(f"{fold.metrics[k]:.4f}" for k in names),
        )
    table.add_section()
    table.add_row(
        "mean ± sd", "", "", "", *(f"{result.mean[k]:.4f} ± {result.sd[k]:.4f}" for k in names)
    )
    return table
