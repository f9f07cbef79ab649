"""dltrain compare RUN RUN…: the runs' recipe differences and metrics side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dltrain.cli.common import JsonOption, from_workdir, print_wide, reported_errors
from dltrain.cli.evaluate import ReportFormat
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.recipe.choices import SplitName

if TYPE_CHECKING:
    from dltrain.evaluation.comparison import Comparison


def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Two or more run folders, runs/<recipe>/<id>.", show_default=False),
    ],
    split: Annotated[
        SplitName,
        typer.Option(
            "--split", help="Whose metrics to compare: the test, validation or train split."
        ),
    ] = SplitName.TEST,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="A metric row to show (repeatable). Default: the task's key metrics.",
            show_default=False,
        ),
    ] = None,
    report_format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="What to write besides the tables on stderr: nothing (table), the JSON "
            "document, or a Markdown report (to stdout, or to --output).",
        ),
    ] = ReportFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the --format json or markdown document to this file instead of stdout.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Show runs' recipe differences and metrics side by side, with evaluate's baselines."""
    console = make_console()
    with reported_errors(console):
        if json_ and report_format == ReportFormat.MARKDOWN:
            raise UsageError("--json and --format markdown both write stdout; choose one.")
        chosen = ReportFormat.JSON if json_ else report_format
        if output is not None and chosen == ReportFormat.TABLE:
            raise UsageError(
                "--output writes the --format json or markdown document; with the default "
                "--format table there is none. Add --format markdown (or json)."
            )
        from dltrain.evaluation.comparison import compare_runs, render_markdown

        comparison = compare_runs(
            [from_workdir(run) for run in runs], split.value, tuple(metric or ())
        )
        render(comparison, console)
        if chosen == ReportFormat.TABLE:
            return
        if output is None and chosen == ReportFormat.JSON:
            write_json(comparison.to_json())
            return
        text = (
            json.dumps(comparison.to_json(), indent=2) + "\n"
            if chosen == ReportFormat.JSON
            else render_markdown(comparison)
        )
        if output is None:
            sys.stdout.write(text)
            return
        from dltrain.atomic import write_text_atomic

        write_text_atomic(from_workdir(output), text)
        console.print(f"Wrote {output}.", highlight=False)


def render(comparison: Comparison, console: Console) -> None:
    """Two tables: the recipe keys that differ, then the metrics beside the baselines."""
    from dltrain.evaluation.comparison import format_value, metric_cell

    labels = comparison.labels
    if comparison.differences:
        table = Table(title="Recipe differences", title_justify="left")
        table.add_column("key")
        for label in labels:
            table.add_column(escape(label))
        for difference in comparison.differences:
            table.add_row(
                escape(difference.key), *(escape(format_value(v)) for v in difference.values)
            )
        print_wide(console, table)
    else:
        console.print("The runs' recipes are the same.")
    table = Table(
        title=f"Metrics on the {comparison.split} split ({comparison.task})", title_justify="left"
    )
    table.add_column("metric")
    for label in labels:
        table.add_column(escape(label), justify="right")
    for name in comparison.baselines:
        table.add_column(f"baseline.{escape(name)}", justify="right", style="dim")
    for name in comparison.metrics:
        best = comparison.best(name)
        cells = [metric_cell(row.metrics.get(name)) for row in comparison.runs]
        if best is not None:
            cells[best] = f"[bold green]{cells[best]}[/]"
        baselines = [metric_cell(values.get(name)) for values in comparison.baselines.values()]
        table.add_row(escape(name), *cells, *baselines)
    table.add_section()
    table.add_row("epochs", *(metric_cell(row.epochs) for row in comparison.runs))
    table.add_row(
        "best epoch",
        *(metric_cell(row.best.epoch if row.best else None) for row in comparison.runs),
    )
    table.add_row("parameters", *(metric_cell(row.parameters) for row in comparison.runs))
    table.add_row(
        "seconds",
        *("-" if row.seconds is None else f"{row.seconds:.1f}" for row in comparison.runs),
    )
    print_wide(console, table)
    for note in comparison.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
