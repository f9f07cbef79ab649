"""dltrain prepare: raw data → data/<recipe>/ (splits, manifest, checksums)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

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
from dltrain.runs import data_dir


def prepare(
    recipe: RecipeOption = None,
    sets: SetOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if nothing changed.")
    ] = False,
    print_recipe_: PrintRecipeOption = False,
    json_: JsonOption = False,
) -> None:
    """Read the recipe's raw data, split it and store it in data/<recipe name>/."""
    console = make_console()
    with reported_errors(console):
        loaded = load(recipe, sets)
        if print_recipe_:
            print_recipe(loaded)
            return
        from dltrain.data.prepare import prepare as prepare_data

        folder = data_dir(workdir(), loaded.recipe.name)
        with console.status(f"Preparing {loaded.recipe.data.source} …"):
            result = prepare_data(loaded.recipe.data, loaded.recipe.seed, folder, force=force)
        manifest = result.dataset.manifest
        if json_:
            write_json(
                {"folder": str(folder), "up_to_date": result.up_to_date, "manifest": manifest}
            )
        if result.up_to_date:
            console.print(
                f"[green]Up to date:[/] {folder} already holds this source prepared with this "
                f"recipe; nothing to do (--force rebuilds)."
            )
            return
        table = Table(title=f"Prepared {folder}", title_justify="left")
        for column in ("split", "examples", "smallest class", "largest class"):
            table.add_column(column, justify="right" if column != "split" else "left")
        classes = manifest["target"]["classes"]
        for split, entry in manifest["splits"].items():
            counts = entry["class_counts"]
            low, high = (
                min(range(len(counts)), key=counts.__getitem__),
                max(range(len(counts)), key=counts.__getitem__),
            )
            table.add_row(
                split,
                f"{entry['num_examples']:,}",
                f"{classes[low]} ({counts[low]:,})",
                f"{classes[high]} ({counts[high]:,})",
            )
        console.print(table)
        features = manifest["features"]
        console.print(
            f"{len(classes)} classes, examples of shape {tuple(features['shape'])} "
            f"{features['dtype']}, scaling '{manifest['preprocessing']['scaling']}' "
            f"(applied inside the model)."
        )
