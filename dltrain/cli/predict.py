"""dltrain predict: raw inputs → predictions (CSV or JSON lines) with a run's model, or a GAN
run's generated images (PNG files in a folder)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    RunOption,
    SetOption,
    TtaOption,
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

if TYPE_CHECKING:  # the generation module loads TensorFlow; the CLI stays light
    from dltrain.evaluation.generation import GenerateRequest


def predict(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write: .csv, or .jsonl for JSON lines; with --num-samples, a new (or "
            "empty) folder for the PNG files. Put in place atomically at the end.",
            show_default=False,
        ),
    ],
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Raw inputs: a CSV/TSV or Parquet table with the training source's columns, an "
            ".npz (array x, 1-D id arrays pass through), an IDX images file, a folder of image "
            "files (PNG, JPEG, …), or a text file with one text per line. Not for a GAN run.",
            show_default=False,
        ),
    ] = None,
    num_samples: Annotated[
        int | None,
        typer.Option(
            "--num-samples",
            min=1,
            help="GAN runs: generate this many images, one PNG each in the --output folder "
            "(no --input).",
            show_default=False,
        ),
    ] = None,
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
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            help="With --num-samples: fixes the images (default: the recipe's seed).",
            show_default=False,
        ),
    ] = None,
    tta: TtaOption = 1,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Predict raw inputs with a run's model (predicted class or value, and probabilities), or
    generate images with a GAN run (--num-samples)."""
    console = make_console()
    with reported_errors(console):
        if num_samples is not None:
            _refuse_input_options(num_samples, input_, input_format, threshold, tta)
            overrides = collect_overrides(sets, {"seed": seed})
            loaded, run_dir = resolve_recipe_and_run(recipe, run, workdir(), overrides)
            with console.status("Loading TensorFlow and the model …"):
                from dltrain.evaluation.generation import GenerateRequest
            generation = GenerateRequest(
                run_dir, from_workdir(output), num_samples, loaded.recipe.seed, batch_size
            )
            _generate(console, generation, json_)
            return
        if seed is not None:
            raise UsageError(
                f"--seed {seed} fixes the images a GAN run generates with --num-samples, which "
                f"was not given; predictions of inputs need no seed. Drop --seed, or add "
                f"--num-samples N for a GAN run."
            )
        _, run_dir = resolve_recipe_and_run(recipe, run, workdir(), collect_overrides(sets))
        source = None if input_ is None else from_workdir(input_)
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
            tta=tta,
        )
        with counting_bar(console, "Predicting") as advance:
            result = predict_file(request, advance)
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
        if result.tta is not None:
            console.print(
                f"Test-time augmentation: probabilities averaged over {result.tta.num_views} "
                f"views of each image.",
                highlight=False,
            )
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
                    "tta": None if result.tta is None else result.tta.to_json(),
                    "counts": result.counts,
                    "inputs": result.inputs.to_json(),
                    "seconds": round(result.seconds, 3),
                }
            )


def _refuse_input_options(
    num_samples: int, input_: Path | None, input_format: str, threshold: float | None, tta: int
) -> None:
    """Refuse options that read or threshold inputs beside --num-samples, before any run is read.

    Raises:
        UsageError: --input, --input-format, --threshold or --tta given with --num-samples.
    """
    given = [
        text
        for text, present in (
            (f"--input {input_}", input_ is not None),
            (f"--input-format {input_format}", input_format != "auto"),
            (f"--threshold {threshold}", threshold is not None),
            (f"--tta {tta}", tta != 1),
        )
        if present
    ]
    if given:
        raise UsageError(
            f"--num-samples {num_samples} generates images with a GAN run, which reads no "
            f"inputs, but {' and '.join(given)} {'was' if len(given) == 1 else 'were'} given too. "
            f"Drop {'it' if len(given) == 1 else 'them'} to generate images, or drop "
            f"--num-samples to predict inputs with a run that takes them."
        )


def _generate(console: Console, request: GenerateRequest, json_: bool) -> None:
    """Generate the request's images with its GAN run, behind a progress bar; report them."""
    from dltrain.evaluation.generation import generate_images

    with counting_bar(console, "Generating") as advance:
        result = generate_images(request, advance)
    height, width, channels = result.image_shape
    console.print(
        f"[green]Wrote[/] {result.num_images:,} generated images ({width}×{height}, "
        f"{channels} channel{'s' if channels > 1 else ''}, PNG) into {result.output} in "
        f"{format_duration(result.seconds)} with run {request.run_dir.name} (seed "
        f"{result.seed}).",
        highlight=False,
    )
    if json_:
        write_json(result.to_json(request.run_dir))


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


@contextlib.contextmanager
def counting_bar(console: Console, label: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar; yields the ``(done, total)`` callback that moves it."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
