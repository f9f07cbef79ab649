"""dltrain train: the recipe's model on its prepared data → runs/<recipe>/<run id>/."""

from __future__ import annotations

from typing import Annotated

import typer

from dltrain.cli.common import (
    JsonOption,
    PrintRecipeOption,
    RecipeOption,
    SetOption,
    load,
    print_recipe,
    reported_errors,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.recipe.schema import OptimizerName, ScheduleName


def train(
    recipe: RecipeOption = None,
    optimizer: Annotated[
        OptimizerName | None,
        typer.Option("--optimizer", help="train.optimizer.name", show_default=False),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate", "--lr", help="train.optimizer.learning_rate", show_default=False
        ),
    ] = None,
    lr_schedule: Annotated[
        ScheduleName | None,
        typer.Option("--lr-schedule", help="train.lr_schedule.name", show_default=False),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="train.epochs", show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="train.batch_size", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed", show_default=False)] = None,
    sets: SetOption = None,
    print_recipe_: PrintRecipeOption = False,
    json_: JsonOption = False,
) -> None:
    """Train the recipe's model on data/<recipe name>/ into a new run folder."""
    console = make_console()
    with reported_errors(console):
        flags = {
            "train.optimizer.name": optimizer.value if optimizer else None,
            "train.optimizer.learning_rate": learning_rate,
            "train.lr_schedule.name": lr_schedule.value if lr_schedule else None,
            "train.epochs": epochs,
            "train.batch_size": batch_size,
            "seed": seed,
        }
        loaded = load(recipe, sets, flags)
        if print_recipe_:
            print_recipe(loaded)
            return
        r = loaded.recipe
        console.print(
            f"Training [bold]{r.name}[/]: {r.model.family} · {r.train.optimizer.name.value} "
            f"lr {r.train.optimizer.learning_rate:g} ({r.train.lr_schedule.name.value}) · "
            f"{r.train.epochs} epochs · batch {r.train.batch_size} · seed {r.seed}",
            highlight=False,
        )
        with console.status("Loading TensorFlow and the prepared data …"):
            from dltrain.training.fit import train as train_model
        result = train_model(loaded, workdir(), console)
        if result.best_epoch is not None:
            console.print(
                f"Best {result.monitor} {result.best_value:.4f} at epoch {result.best_epoch} of "
                f"{result.epochs_run}; the saved model holds that epoch's weights.",
                highlight=False,
            )
        console.print(
            f"[green]Saved[/] {result.run_dir} in {result.seconds:.0f}s. "
            f"Next: dltrain evaluate{' --recipe ' + recipe if recipe else ''}",
            highlight=False,
        )
        if json_:
            write_json(
                {
                    "run": str(result.run_dir),
                    "epochs_run": result.epochs_run,
                    "best": {
                        "monitor": result.monitor,
                        "epoch": result.best_epoch,
                        "value": result.best_value,
                    },
                    "final": result.final_logs,
                    "seconds": round(result.seconds, 2),
                }
            )
