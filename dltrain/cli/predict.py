"""dltrain predict: raw inputs → predictions (CSV or JSON lines) with a run's model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    RunOption,
    SetOption,
    collect_overrides,
    from_workdir,
    render_input_report,
    reported_errors,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.recipe.durations import format_duration
from dltrain.runs import resolve_recipe_and_run


def predict(
    input_: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="Raw inputs: a CSV/TSV or Parquet table with the training source's columns, an "
            ".npz (array x, 1-D id arrays pass through), an IDX images file, a folder of image "
            "files (PNG, JPEG, …), or a text file with one text per line.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write: .csv, or .jsonl for JSON lines. Replaced atomically at the end.",
            show_default=False,
        ),
    ],
    recipe: RecipeOption = None,
    run: RunOption = None,
    input_format: Annotated[
        str,
        typer.Option("--input-format", help="auto, or one of npz, idx, images, table, lines."),
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Examples per model call.")
    ] = 256,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Binary classifiers: predict the positive class when its probability is at "
            "least this. Default: the threshold evaluate --optimize-threshold stored, else 0.5.",
            show_default=False,
        ),
    ] = None,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Predict raw inputs with a run's model: predicted class (or value) and probabilities."""
    console = make_console()
    with reported_errors(console):
        _, run_dir = resolve_recipe_and_run(recipe, run, workdir(), collect_overrides(sets))
        source = from_workdir(input_)
        target = from_workdir(output)
        with console.status("Loading TensorFlow and the model …"):
            from dltrain.evaluation.predict import PredictRequest, output_format, predict_file

            output_format(target)  # a wrong suffix fails before TensorFlow loads
        _refuse_output(target)
        request = PredictRequest(
            run_dir=run_dir,
            input=source,
            output=target,
            input_format=input_format,
            batch_size=batch_size,
            threshold=threshold,
        )
        with Progress(
            TextColumn("Predicting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("predict", total=None)
            result = predict_file(
                request, lambda done, total: progress.update(task, completed=done, total=total)
            )
        rate = result.num_examples / max(result.seconds, 1e-9)
        console.print(
            f"[green]Wrote[/] {result.output}: {result.num_examples:,} predictions "
            f"({result.output_format}) from {result.input_format} input in "
            f"{format_duration(result.seconds)} "
            f"({rate:,.0f}/s) with run {run_dir.name}.",
            highlight=False,
        )
        if result.threshold is not None:
            console.print(f"Decision threshold: {result.threshold:.4g}", highlight=False)
        if result.counts:
            counts = ", ".join(f"{k} {v:,}" for k, v in sorted(result.counts.items()))
            console.print(f"Predicted classes: {counts}", highlight=False)
        render_input_report(console, result.inputs, result.num_examples)
        if json_:
            write_json(
                {
                    "run": str(run_dir),
                    "input": str(source),
                    "input_format": result.input_format,
                    "output": str(result.output),
                    "output_format": result.output_format,
                    "num_examples": result.num_examples,
                    "task": result.task,
                    "threshold": result.threshold,
                    "counts": result.counts,
                    "inputs": result.inputs.to_json(),
                    "seconds": round(result.seconds, 3),
                }
            )


def _refuse_output(target: Path) -> None:
    """Refuse an --output that would replace a folder, or a file of a run folder.

    Raises:
        UsageError: naming the path and another to use.
    """
    from dltrain.data.readers.formats import enclosing_run

    if target.is_dir():
        raise UsageError(
            f"--output {target} is a folder; predict writes one file. Name a file, such as "
            f"{target / 'predictions.csv'}."
        )
    run = enclosing_run(target)
    if run is not None and target.exists():
        raise UsageError(
            f"--output {target} is a file of run folder {run}, which dltrain keeps as the run's "
            f"record; predict does not write over it. Write the predictions elsewhere, such as "
            f"predictions.csv in the working directory."
        )
