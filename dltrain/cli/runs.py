"""dltrain runs: the recipe's runs side by side, with their status, training time and metrics."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    SetOption,
    load,
    print_wide,
    reported_errors,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.recipe.choices import SplitName
from dltrain.recipe.durations import format_duration
from dltrain.runs import runs_dir

if TYPE_CHECKING:
    from dltrain.evaluation.compare import RunRow


def runs(
    recipe: RecipeOption = None,
    split: Annotated[
        SplitName,
        typer.Option("--split", help="Whose metrics to show: the test, validation or train split."),
    ] = SplitName.TEST,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="Sort by a metric (best first) or by started, epochs, seconds, parameters, best.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="A metric column to show (repeatable). Default: the task's key metrics.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show only the first N rows.")
    ] = None,
    trials: Annotated[
        bool, typer.Option("--trials", help="Also list `dltrain tune` trials (hidden by default).")
    ] = False,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """List the recipe's runs with their status, training time and evaluated metrics."""
    console = make_console()
    with reported_errors(console):
        from dltrain.evaluation.compare import default_metrics, list_runs, sort_runs

        loaded = load(recipe, sets)
        root = runs_dir(workdir(), loaded.recipe.name)
        listed, hidden = list_runs(root, split.value, include_trials=trials)
        rows = sort_runs(listed, sort)
        if limit is not None:
            rows = rows[:limit]
        _check_metrics(metric, listed)
        columns = list(metric or default_metrics(rows))
        if json_:
            write_json(
                {
                    "recipe": loaded.recipe.name,
                    "folder": str(root),
                    "split": split.value,
                    "sort": sort,
                    "runs": [r.to_json() for r in rows],
                    "hidden_trials": hidden,
                }
            )
        trials_note = f"{hidden} tune trial(s) not shown; --trials lists them." if hidden else ""
        if not rows:
            console.print(
                f"No runs of recipe '{loaded.recipe.name}' under {root} yet. Train one with "
                f"`dltrain train`. {trials_note}".rstrip()
            )
            return
        render(rows, columns, split.value, console, title=f"Runs of {loaded.recipe.name} ({root})")
        if trials_note:
            console.print(trials_note)


def _check_metrics(metric: list[str] | None, rows: list[RunRow]) -> None:
    """Refuse a --metric no evaluated run reports (a typo showed as a column of '-').

    Raises:
        UsageError: naming the metric, the closest known one and the known ones.
    """
    known = sorted({name for row in rows for name in row.metrics})
    unknown = [name for name in metric or [] if name not in known]
    if not known or not unknown:  # no run evaluated yet: nothing to tell a typo by
        return
    guess = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    raise UsageError(
        f"--metric {unknown[0]!r} is not a metric of these runs.{hint} Their metrics: "
        f"{', '.join(known)}."
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(
    rows: list[RunRow], columns: list[str], split: str, console: Console, title: str
) -> None:
    """The runs table: training facts, then the chosen metrics of ``split``."""
    table = Table(title=title, title_justify="left")
    for name in ("run", "status", "epochs", "time", "params", "best (monitor)"):
        table.add_column(name, justify="left" if name in ("run", "status") else "right")
    for name in columns:
        table.add_column(name, justify="right")
    table.add_column("gates", justify="center")
    for row in rows:
        best = row.best
        best_text = (
            f"{best.value:.4f} ({best.monitor})"
            if best is not None and best.value is not None
            else "-"
        )
        gates = {True: "[green]pass[/]", False: "[red]fail[/]", None: "-"}[row.passed]
        table.add_row(
            row.run,
            row.status,
            _cell(row.epochs),
            "-" if row.seconds is None else format_duration(row.seconds),
            _cell(row.parameters),
            best_text,
            *(_cell(row.metrics.get(name)) for name in columns),
            gates,
        )
    print_wide(console, table)
    unevaluated = [r for r in rows if not r.metrics and r.status == "completed"]
    if unevaluated:
        console.print(
            f"{len(unevaluated)} run(s) have no metrics on the {split} split yet: "
            f"`dltrain evaluate --run {unevaluated[-1].path}` adds them.",
            highlight=False,
        )
