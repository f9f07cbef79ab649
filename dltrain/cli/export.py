"""dltrain export: a run's model as SavedModel, TFLite or ONNX, each checked by its own runtime."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    RunOption,
    SetOption,
    collect_overrides,
    from_workdir,
    print_wide,
    reported_errors,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.runs import resolve_recipe_and_run


class Format(StrEnum):  # mirrors evaluation.export.ExportFormat, which imports TensorFlow
    SAVED_MODEL = "saved_model"
    TFLITE = "tflite"
    ONNX = "onnx"


def export(
    recipe: RecipeOption = None,
    run: RunOption = None,
    formats: Annotated[
        list[Format] | None,
        typer.Option(
            "--format",
            "-f",
            help="saved_model, tflite or onnx (repeatable). Default: saved_model.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write (one format only). Default: <run>/export/saved_model/, "
            "model.tflite or model.onnx.",
            show_default=False,
        ),
    ] = None,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Export a run's model; each export must match the Keras model's outputs to be written."""
    console = make_console()
    with reported_errors(console):
        chosen = list(dict.fromkeys(formats or [Format.SAVED_MODEL]))
        if output is not None and len(chosen) > 1:
            raise UsageError(
                f"--output names one path but {len(chosen)} formats were asked for; export them "
                f"one at a time, or drop --output to use <run>/export/."
            )
        _, run_dir = resolve_recipe_and_run(recipe, run, workdir(), collect_overrides(sets))
        target = None if output is None else from_workdir(output)
        results = []
        for fmt in chosen:
            with console.status(f"Exporting {run_dir.name} as {fmt.value} and checking it …"):
                from dltrain.evaluation.export import ExportFormat, export_run

                results.append(export_run(run_dir, ExportFormat(fmt.value), target))
        table = Table(title=f"Exports of {run_dir}", title_justify="left")
        for name in ("format", "path", "size", "checked on", "max |diff|", "same class"):
            table.add_column(name, justify="left" if name in ("format", "path") else "right")
        for r in results:
            table.add_row(
                r.format.value,
                str(r.path.relative_to(run_dir)) if r.path.is_relative_to(run_dir) else str(r.path),
                f"{r.bytes / 1e6:.2f} MB",
                f"{r.checked_examples} inputs",
                f"{r.max_abs_diff:.2e}",
                "-" if r.agreement is None else f"{r.agreement:.1%}",
            )
        print_wide(console, table)
        if json_:
            write_json({"run": str(run_dir), "exports": [r.to_json() for r in results]})
