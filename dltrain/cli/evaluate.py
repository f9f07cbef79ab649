"""dltrain evaluate: metrics of a run's model, as tables for people and JSON for machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dltrain.cli.common import JsonOption, RecipeOption, SetOption, load, reported_errors, workdir
from dltrain.console import make_console, write_json
from dltrain.recipe.schema import SplitName
from dltrain.runs import resolve_run


def evaluate(
    recipe: RecipeOption = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="Run folder to evaluate. Default: the recipe's latest run.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        SplitName | None,
        typer.Option(
            "--split", help="Split to evaluate (default: evaluate.split, test).", show_default=False
        ),
    ] = None,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Evaluate a run's model on a split of its prepared data; saves metrics.json in the run."""
    console = make_console()
    with reported_errors(console):
        loaded = load(recipe, sets, {"evaluate.split": split.value if split else None})
        spec = loaded.recipe.evaluate
        run_dir = resolve_run(run, workdir(), loaded.recipe.name)
        with console.status(f"Evaluating {run_dir} on the {spec.split.value} split …"):
            from dltrain.evaluation.evaluate import evaluate_run

            document = evaluate_run(run_dir, spec.split.value, spec.batch_size)
        render(document, console)
        if json_:
            write_json(document)


def render(document: dict[str, Any], console: Console) -> None:
    """Headline metrics, per-class table and confusion matrix."""
    title = (
        f"{document['recipe']} · {Path(document['run']).name} · {document['split']} split "
        f"({document['num_examples']:,} examples)"
    )
    headline = Table(title=title, title_justify="left")
    headline.add_column("metric")
    headline.add_column("value", justify="right")
    for name, value in document["metrics"].items():
        headline.add_row(name, f"{value:.4f}")
    console.print(headline)

    per_class = Table(title="Per class", title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for row in document["per_class"]:
        per_class.add_row(
            row["class"],
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            f"{row['support']:,}",
        )
    console.print(per_class)

    confusion = document["confusion_matrix"]
    matrix = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
    matrix.add_column("")
    for label in confusion["labels"]:
        matrix.add_column(label, justify="right")
    for label, row in zip(confusion["labels"], confusion["counts"], strict=True):
        matrix.add_row(
            label,
            *(
                f"[bold]{c}[/]" if i == confusion["labels"].index(label) else str(c)
                for i, c in enumerate(row)
            ),
        )
    console.print(matrix)
