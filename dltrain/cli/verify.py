"""dltrain verify RUN: train a finished run again from its saved recipe and seed, and compare."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dltrain.cli.common import JsonOption, from_workdir, print_wide, reported_errors
from dltrain.console import make_console, write_json
from dltrain.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from dltrain.training.verify import VerifyResult

# also training/verify.py's DEFAULT_TOLERANCE, which this light module cannot import
DEFAULT_TOLERANCE = 1e-6


def verify(
    run: Annotated[
        Path,
        typer.Argument(help="The finished run folder to retrain and compare, runs/<recipe>/<id>."),
    ],
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Largest allowed difference: |a - b| <= tolerance x max(1, |a|, |b|), for every "
            "history value, final log and weight.",
        ),
    ] = DEFAULT_TOLERANCE,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Keep the rerun as a new run folder beside RUN (default: delete it)."
        ),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Retrain RUN from its saved recipe and seed; exit 1 if it is not reproduced."""
    console = make_console()
    with reported_errors(console):
        if not math.isfinite(tolerance) or tolerance < 0:
            raise UsageError(
                f"--tolerance must be a number >= 0. Received: {tolerance}. Use 0 for bit-for-bit "
                f"equality, or e.g. 1e-4 for a run that was not deterministic."
            )
        path = from_workdir(run)
        console.print(
            f"Verifying [bold]{escape(str(run))}[/]: training it again from its saved recipe and "
            f"seed …",
            highlight=False,
        )
        with console.status("Loading TensorFlow …"):
            from dltrain.training.verify import VerifyRequest, verify_run
        result = verify_run(
            VerifyRequest(run=path, tolerance=tolerance, keep=keep), _trainer(console)
        )
        render(result, console)
        if json_:
            write_json(result.to_json())
    if not result.passed:
        raise typer.Exit(int(ExitCode.FAILED))


def _trainer(console: Console) -> Any:
    def train(loaded: Any, scratch: Path) -> Path:
        from dltrain.training.fit import train as train_model

        return train_model(loaded, scratch, console).run_dir

    return train


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and len(value) == 64:  # a SHA-256
        return value[:12] + "…"
    return str(value)


_STYLE = {
    "identical": "green",
    "within tolerance": "green",
    "differs": "bold red",
    "skipped": "dim",
}


def render(result: VerifyResult, console: Console) -> None:
    """The checks as a table, the notes, and the verdict in one line."""
    reproduction = result.reproduction
    table = Table(title=f"Rerun of {result.run}", title_justify="left")
    for name in ("check", "original", "rerun", "largest difference", "verdict"):
        table.add_column(name, justify="right" if name != "check" else "left")
    for check in reproduction.checks:
        verdict = check.verdict.value
        detail = f" ({check.detail})" if check.detail else ""
        table.add_row(
            escape(check.name),
            _value(check.original),
            _value(check.rerun),
            _value(check.difference),
            f"[{_STYLE[verdict]}]{verdict}[/]{escape(detail)}",
        )
    print_wide(console, table)
    for note in reproduction.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if result.kept is not None:
        console.print(f"The rerun is kept as {result.kept}.", highlight=False)
    if result.passed:
        console.print(
            f"[green]Reproduced[/]: every check within tolerance {reproduction.tolerance:g}.",
            highlight=False,
        )
    else:
        names = ", ".join(check.name for check in reproduction.differing)
        console.print(
            f"[bold red]Not reproduced[/]: {escape(names)} differ beyond tolerance "
            f"{reproduction.tolerance:g}.",
            highlight=False,
        )
