"""What every command shares: recipe options, override flags, and the error boundary."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dltrain.credentials import mask_credentials
from dltrain.errors import (
    DltrainError,
    ExitCode,
    OutOfMemory,
    file_system_error,
    os_error_of,
)

if TYPE_CHECKING:
    from dltrain.data.readers.model_input import InputReport
    from dltrain.recipe import LoadedRecipe

RecipeOption = Annotated[
    str | None,
    typer.Option(
        "--recipe",
        "-r",
        help="Recipe YAML file, or the name of one in recipes/. Default: ./dltrain.yaml.",
        show_default=False,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any recipe value: --set train.batch_size=256 (repeatable; YAML values).",
        show_default=False,
    ),
]
PrintRecipeOption = Annotated[
    bool, typer.Option("--print-recipe", help="Print the resolved recipe (YAML) and exit.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")]
TrackOption = Annotated[
    str | None,
    typer.Option(
        "--track",
        help="mlflow or mlflow:URI: log to MLflow (train.tracking, train.tracking_uri); the "
        "default store is sqlite:///<workdir>/mlflow.db. Needs the `mlflow` extra.",
        show_default=False,
    ),
]


def track_flags(track: str | None) -> Flags:
    """``--track mlflow[:URI]`` as the recipe keys it sets (none when not given).

    Raises:
        UsageError: a malformed value, or MLflow not installed.
    """
    if track is None:
        return {}
    from dltrain.tracking import parse_track, require_mlflow

    name, uri = parse_track(track)
    require_mlflow()
    return {"train.tracking": name, "train.tracking_uri": uri}


RunOption = Annotated[
    Path | None,
    typer.Option(
        "--run",
        help="Run folder. Default: the recipe's latest finished run.",
        show_default=False,
    ),
]
TtaOption = Annotated[
    int,
    typer.Option(
        "--tta",
        help="Image classifiers: average the probabilities of N views of each image, the "
        "original and N-1 flipped or shifted as the recipe's model.augmentation trained (flip, "
        "crop, translation), fixed by the run's seed. 1: the image alone.",
    ),
]


# Named command-line options that override recipe keys: dotted key → value (None: not given).
Flags = Mapping[str, object]


def collect_overrides(sets: list[str] | None, flags: Flags | None = None) -> list[tuple[str, Any]]:
    """The recipe overrides a command line gives: named flags first, then ``--set`` in order.

    Raises:
        UsageError: a malformed ``--set``.
    """
    overrides = [(key, value) for key, value in (flags or {}).items() if value is not None]
    from dltrain.recipe.load import parse_assignment

    return overrides + [parse_assignment(text) for text in sets or []]


def load(recipe: str | None, sets: list[str] | None, flags: Flags | None = None) -> LoadedRecipe:
    """Find and load the recipe; named flags apply first, then ``--set`` in order."""
    from dltrain.recipe.load import find_recipe, load_recipe

    return load_recipe(find_recipe(recipe), collect_overrides(sets, flags))


def print_recipe(loaded: LoadedRecipe) -> None:
    sys.stdout.write(loaded.to_yaml())


def print_wide(console: Console, table: Table) -> None:
    """Print a table at its natural width, even past a non-terminal's 80 columns: a CI log line
    may be long, but a run id or path cut to "2026…" is useless."""
    width = console.width
    console.width = max(width, 200)
    try:
        console.print(table)
    finally:
        console.width = width


@contextlib.contextmanager
def reported_errors(console: Console, secret_url: str | None = None) -> Iterator[None]:
    """Turn dltrain's errors into one paragraph and an exit code; tracebacks only with --debug.

    Faults of the machine (a read-only or full disk, no permission, no memory) are the user's to
    fix, not bugs: they get their own paragraph and exit 2. Every text printed here, tracebacks
    included, has its passwords hidden (``mask_credentials``).

    Args:
        console: where the paragraph goes.
        secret_url: a URL the command was given whose password must not appear even in pieces
            (``tune --storage``).
    """
    debug = bool(os.environ.get("DLTRAIN_DEBUG"))

    def say(kind: str, message: str) -> None:
        if debug:
            trace = mask_credentials(traceback.format_exc(), secret_url)
            console.print(trace, markup=False, highlight=False)
        console.print(f"[bold red]{kind}:[/] {escape(mask_credentials(message, secret_url))}")

    try:
        yield
    except DltrainError as exc:
        say(exc.kind, exc.message)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: stopped at your request.")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except typer.Exit:
        raise
    except Exception as exc:
        known = _machine_fault(exc)
        if known is not None:
            say(known.kind, known.message)
            raise typer.Exit(int(known.exit_code)) from None
        # A bug of ours: say so plainly; the traceback (passwords hidden) only with --debug.
        say(
            "internal error",
            f"{type(exc).__name__}: {exc}. This is a bug in dltrain, not in your input; rerun "
            f"with --debug for the traceback and report it.",
        )
        raise typer.Exit(int(ExitCode.FAILED)) from None


def _machine_fault(exc: Exception) -> DltrainError | None:
    """A fault of the machine that reached the boundary unexplained: disk or memory."""
    error = os_error_of(exc)
    if error is not None:
        return file_system_error(error)
    # TensorFlow's allocation failure, named rather than imported: this module stays light.
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        return OutOfMemory(
            f"The machine ran out of memory ({_memory_detail(exc)}). The model or a batch of "
            f"the recipe does not fit: `dltrain train --dry-run` shows the model's size and the "
            f"memory a batch takes; lower train.batch_size or the model's widths. If the "
            f"prepared splits are what fills the memory, `train.input: stream` reads them a "
            f"shard at a time."
        )
    return None


def _memory_detail(exc: Exception) -> str:
    """What failed to allocate, in one line: TensorFlow's "OOM when allocating tensor with
    shape[...]" line where its message has one (its first line is "Graph execution error:").

    Example:
        >>> _memory_detail(MemoryError("Graph execution error:\\n\\nOOM when allocating tensor "
        ...     "with shape[128,64] and type float on /job:localhost/device:CPU:0 by allocator"))
        'OOM when allocating tensor with shape[128,64] and type float'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    detail = next((line for line in lines if line.startswith("OOM when allocating")), lines[0])
    detail = detail.split(" on /job:")[0]  # the device path says nothing to a user
    return detail if len(detail) <= 300 else detail[:300] + " …"


def workdir() -> Path:
    """Where data/ and runs/ live: the working directory, so shell pipelines need no paths."""
    return Path.cwd()


def from_workdir(path: Path) -> Path:
    """A path typed on the command line, read from the working directory as a shell user expects."""
    return path if path.is_absolute() else workdir() / path


def render_input_report(console: Console, report: InputReport, num_examples: int) -> None:
    """A table of the input columns whose values the model filled in or did not recognise."""
    noteworthy = report.noteworthy
    if not noteworthy:
        return
    table = Table(
        title="Inputs the model did not see as in training", title_justify="left", box=None
    )
    table.add_column("column")
    table.add_column("missing (filled as in training)", justify="right")
    table.add_column("unseen categories (out of vocabulary)", justify="right")
    for column in noteworthy:
        table.add_row(
            escape(column.column),
            _count(column.missing, num_examples),
            _count(column.unseen, num_examples),
        )
    console.print(table)


def _count(count: int, total: int) -> str:
    return f"{count:,} ({count / max(total, 1):.1%})" if count else ""
