"""dltrain init: inspect a dataset and write a starter dltrain.yaml, saying what it inferred."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape

from dltrain.atomic import write_text_atomic
from dltrain.cli.common import JsonOption, from_workdir, reported_errors
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.recipe.files import DEFAULT_RECIPE
from dltrain.tasks import Task


def init(
    path: Annotated[Path, typer.Argument(help="The dataset: a CSV/TSV/Parquet file, or a folder.")],
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="The column to predict (tables).", show_default=False),
    ] = None,
    task: Annotated[
        Task | None,
        typer.Option("--task", help="Force the task instead of inferring it.", show_default=False),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the recipe.")
    ] = Path(DEFAULT_RECIPE),
    name: Annotated[
        str | None, typer.Option("--name", help="The recipe's name.", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing recipe.")] = False,
    json_: JsonOption = False,
) -> None:
    """Inspect a dataset and write a starter recipe: dltrain init data.csv --target y."""
    console = make_console()
    with reported_errors(console):
        output = from_workdir(output)
        if output.exists() and not force:
            raise UsageError(
                f"{output} already exists; dltrain init does not overwrite a recipe. Pass "
                f"--force to replace it, or --output OTHER.yaml to write a new one."
            )
        with console.status(f"Inspecting {path} …"):
            from dltrain.data.starter import starter_recipe

            source = from_workdir(path)
            starter = starter_recipe(source, target, recipe_dir=output.parent, task=task, name=name)
        header = ["# Starter recipe written by `dltrain init`. What it inferred, and why:"]
        header += [f"#   - {reason}" for reason in starter.reasons]
        header += ["# Next: dltrain prepare && dltrain train && dltrain evaluate", ""]
        body = yaml.safe_dump(starter.recipe, sort_keys=False, width=100, default_flow_style=None)
        text = "\n".join(header) + body
        staging = output.with_name(f".{output.name}.check.yaml")
        try:
            write_text_atomic(staging, text)
            from dltrain.recipe.load import load_recipe

            load_recipe(staging)  # what we write must load: the next command reads it
            staging.replace(output)
        finally:
            staging.unlink(missing_ok=True)
        if starter.profile is not None:
            from dltrain.cli.prepare import render_profile

            render_profile(console, starter.profile)
        console.print("[bold]Inferred:[/]")
        for reason in starter.reasons:
            console.print(f"  • {escape(reason)}", highlight=False)
        next_step = "" if output.name == DEFAULT_RECIPE else f" --recipe {output}"
        console.print(
            f"[green]Wrote[/] {output}. Next: dltrain prepare{next_step} && dltrain train"
            f"{next_step} && dltrain evaluate{next_step}",
            highlight=False,
        )
        if json_:
            write_json(
                {"recipe": str(output), "inferred": starter.reasons, "content": starter.recipe}
            )
