"""dltrain prepare: raw data → data/<recipe>/ (profile, cleaning, splits, manifest, checksums)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, assert_never

import typer
from rich.console import Console
from rich.markup import escape
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
from dltrain.errors import DataQualityError
from dltrain.runs import data_dir

if TYPE_CHECKING:
    from dltrain.manifest import Manifest

MAX_CLASS_COLUMNS = 6


def prepare(
    recipe: RecipeOption = None,
    sets: SetOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if nothing changed.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Fail (exit 1) on any profile warning, and write nothing."),
    ] = False,
    print_recipe_: PrintRecipeOption = False,
    json_: JsonOption = False,
) -> None:
    """Profile, clean and split the recipe's raw data into data/<recipe name>/."""
    console = make_console()
    with reported_errors(console):
        loaded = load(recipe, sets)
        if print_recipe_:
            print_recipe(loaded)
            return
        with console.status(f"Preparing {loaded.recipe.data.source} …"):
            from dltrain.data.prepare import prepare as prepare_data

            folder = data_dir(workdir(), loaded.recipe.name)
            try:
                result = prepare_data(
                    loaded.recipe.data, loaded.recipe.seed, folder, force=force, strict=strict
                )
            except DataQualityError as exc:
                render_profile(console, exc.profile)
                if json_:
                    write_json({"folder": str(folder), "failed": exc.message})
                raise
        manifest = result.dataset.manifest
        if json_:
            write_json(
                {
                    "folder": str(folder),
                    "up_to_date": result.up_to_date,
                    "manifest": manifest.to_json(),
                    "profile": result.profile,
                }
            )
        if result.up_to_date:
            console.print(
                f"[green]Up to date:[/] {folder} already holds this source prepared with this "
                f"recipe; nothing to do (--force rebuilds)."
            )
            return
        render_profile(console, result.profile)
        render_cleaning(console, manifest)
        render_splits(console, manifest, str(folder))
        console.print(describe(manifest), highlight=False)


def render_profile(console: Console, profile: dict[str, Any]) -> None:
    """The per-column profile table, then notes and warnings."""
    columns = profile.get("columns", [])
    if columns:
        table = Table(
            title=f"Profile: {profile['rows']:,} rows, {len(columns)} columns", title_justify="left"
        )
        for name in ("column", "type", "missing", "distinct", "values", "flags"):
            table.add_column(name, justify="right" if name in ("missing", "distinct") else "left")
        for column in columns:
            role = {"target": " (target)", "ignored": " (unused)", "time": " (time)"}.get(
                column["role"], ""
            )
            distinct = column["distinct"]
            table.add_row(
                escape(column["name"]) + role,
                column["type"],
                f"{column['missing_share']:.1%}" if column["missing"] else "",
                f"{distinct:,}" if distinct is not None else "≥10,000",
                escape(_values(column)),
                f"[yellow]{escape(', '.join(column['flags']))}[/]" if column["flags"] else "",
            )
        console.print(table)
    if profile.get("class_counts"):
        counts = profile["class_counts"]
        total = sum(counts.values()) or 1
        shown = sorted(counts.items(), key=lambda item: -item[1])
        text = ", ".join(f"{escape(k)} {v:,} ({v / total:.1%})" for k, v in shown[:12])
        more = f", … {len(shown) - 12} more" if len(shown) > 12 else ""
        console.print(f"Class balance: {text}{more}", highlight=False)
    for note in profile.get("notes", []):
        console.print(f"[dim]note:[/] {escape(note)}", highlight=False)
    for warning in profile.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _values(column: dict[str, Any]) -> str:
    if column.get("mean") is not None:
        return f"{column['min']:.4g} / {column['mean']:.4g} / {column['max']:.4g}"
    top = column.get("top") or []
    return ", ".join(f"{t['value'][:20]} ({t['count']:,})" for t in top[:3])


def render_cleaning(console: Console, manifest: Manifest) -> None:
    """One line per thing cleaning did: rows dropped, values filled, outliers clipped."""
    cleaning = manifest.cleaning
    for reason, count in cleaning.dropped_rows.items():
        console.print(f"Dropped {count:,} row(s): {escape(reason)}.", highlight=False)
    for entry in cleaning.filled:
        fill = entry.fill
        fill_text = f"{fill:.6g}" if isinstance(fill, float) else str(fill)
        missing = entry.missing
        line = f"{escape(entry.column)}: "
        if entry.where == "prepare":  # series: gaps are filled before windowing
            console.print(
                f"{line}{missing:,} missing value(s) filled by {entry.strategy} (in prepare, "
                f"before windowing).",
                highlight=False,
            )
            continue
        if missing:
            line += (
                f"{missing:,} missing ({entry.missing_in_train:,} in train) → "
                f"{entry.strategy} {escape(fill_text)}"
            )
        if entry.clip:
            low, high = entry.clip
            line += f"{'; ' if missing else ''}outliers clipped to [{low:.4g}, {high:.4g}]"
        console.print(line + " (fitted on train, applied inside the model).", highlight=False)


def render_splits(console: Console, manifest: Manifest, folder: str) -> None:
    """Split sizes and the class balance of each split."""
    table = Table(title=f"Prepared {folder}", title_justify="left")
    table.add_column("split")
    table.add_column("examples", justify="right")
    classes = manifest.classes
    shown = classes if classes and len(classes) <= MAX_CLASS_COLUMNS else None
    if shown:
        for name in shown:
            table.add_column(escape(str(name))[:16], justify="right")
    elif classes:
        table.add_column("smallest class", justify="right")
        table.add_column("largest class", justify="right")
    for split, entry in manifest.splits.items():
        row = [split, f"{entry.num_examples:,}"]
        counts = entry.class_counts
        if counts and shown:
            total = sum(counts) or 1
            row += [f"{c:,} ({c / total:.0%})" for c in counts]
        elif counts and classes:
            low = min(range(len(counts)), key=counts.__getitem__)
            high = max(range(len(counts)), key=counts.__getitem__)
            row += [
                f"{escape(classes[low])} ({counts[low]:,})",
                f"{escape(classes[high])} ({counts[high]:,})",
            ]
        table.add_row(*row)
    console.print(table)


def describe(manifest: Manifest) -> str:
    """One sentence: the task, what the model will take and how it encodes it."""
    from dltrain.manifest import (
        ClassTarget,
        ImageFeatures,
        ImagePreprocessing,
        NumericTarget,
        SequenceFeatures,
        TableFeatures,
        TextFeatures,
    )

    features = manifest.features
    target = manifest.target
    if isinstance(features, ImageFeatures):
        scaling = manifest.preprocessing_as(ImagePreprocessing).scaling
        what = (
            f"images of shape {tuple(features.shape)} {features.dtype}, scaling '{scaling.value}'"
        )
    elif isinstance(features, TableFeatures):
        what = (
            f"rows of {len(features.columns)} columns ({len(features.used)} used), encoded as "
            f"{features.num_features} numbers"
        )
    elif isinstance(features, TextFeatures):
        what = (
            f"texts, vocabulary {features.vocabulary_size:,}, {features.sequence_length} "
            f"tokens each"
        )
    elif isinstance(features, SequenceFeatures):
        horizon = target.horizon if isinstance(target, NumericTarget) else None
        what = (
            f"windows of {features.shape[0]} steps × {features.shape[1]} feature(s), "
            f"predicting {horizon} step(s) of {', '.join(target.names)}"
        )
    else:
        assert_never(features)
    task = manifest.task.value
    if isinstance(target, ClassTarget):
        goal = f"{task} over {target.num_classes} classes"
    else:
        goal = f"{task} of {', '.join(target.names)}"
    return f"Task: {goal}. The model takes raw {what} (preprocessing applied inside the model)."
