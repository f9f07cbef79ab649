"""dltrain train: the recipe's model on its prepared data → runs/<recipe>/<run id>/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from dltrain.cli.common import (
    Flags,
    JsonOption,
    PrintRecipeOption,
    RecipeOption,
    SetOption,
    TrackOption,
    load,
    print_recipe,
    reported_errors,
    track_flags,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.recipe.choices import OptimizerName, ScheduleName
from dltrain.recipe.durations import format_duration
from dltrain.runs import (
    RunFolder,
    latest_unfinished_run,
    remove_stale_run_partials,
    resolve_path,
)

if TYPE_CHECKING:
    from dltrain.recipe import LoadedRecipe
    from dltrain.training.epoch_time import EpochTime
    from dltrain.training.finish import TrainResult


def train(
    recipe: RecipeOption = None,
    optimizer: Annotated[
        OptimizerName | None,
        typer.Option("--optimizer", help="train.optimizer.name", show_default=False),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate", "--lr", help="train.optimizer.learning_rate", show_default=False
        ),
    ] = None,
    lr_schedule: Annotated[
        ScheduleName | None,
        typer.Option("--lr-schedule", help="train.lr_schedule.name", show_default=False),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="train.epochs", show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="train.batch_size", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed", show_default=False)] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            help="K-fold cross-validation over the training and validation rows (train.folds): "
            "K fold runs, held-out metrics mean ± sd, one model averaging them.",
            show_default=False,
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            "--time-budget",
            help="Stop gracefully after this long (90s, 10m, 1h30m), keeping the best weights.",
            show_default=False,
        ),
    ] = None,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Deterministic ops (train.deterministic).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run from its last completed epoch, or finish one "
            "killed while saving its model (the recipe's latest unfinished run, or --run PATH). "
            "Only --epochs and --time-budget may change.",
        ),
    ] = False,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="The run folder to --resume.", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show the model, its size, memory per batch, steps and learning rates, and "
            "the time an epoch takes from a few timed steps; keep nothing.",
        ),
    ] = False,
    track: TrackOption = None,
    sets: SetOption = None,
    print_recipe_: PrintRecipeOption = False,
    json_: JsonOption = False,
) -> None:
    """Train the recipe's model on data/<recipe name>/ into a new run folder."""
    console = make_console()
    with reported_errors(console):
        flags = {
            "train.optimizer.name": optimizer.value if optimizer else None,
            "train.optimizer.learning_rate": learning_rate,
            "train.lr_schedule.name": lr_schedule.value if lr_schedule else None,
            "train.epochs": epochs,
            "train.batch_size": batch_size,
            "seed": seed,
            "train.time_budget": time_budget,
            "train.deterministic": True if deterministic else None,
            "train.folds": folds,
            **track_flags(track),
        }
        resume_dir = None
        if resume:
            changed = [k for k, v in flags.items() if v is not None and k not in _RESUMABLE]
            if changed or sets:
                raise UsageError(
                    f"--resume continues a run exactly as it was recipe'd; only --epochs and "
                    f"--time-budget may change. Received also: "
                    f"{', '.join(changed + ['--set'] * bool(sets))}. Drop those flags, or "
                    f"start a new run without --resume."
                )
            resume_dir, loaded = _resumable(recipe, run, flags)
        else:
            loaded = load(recipe, sets, flags)
        if print_recipe_:
            print_recipe(loaded)
            return
        if dry_run:
            _dry_run(loaded, console, json_)
            return
        r = loaded.recipe
        if r.train.tracking.value == "mlflow":
            from dltrain.tracking import require_mlflow

            require_mlflow()
        if r.train.folds and resume_dir:
            raise UsageError(
                f"Run {resume_dir} is one fold of a cross-validation, or its recipe sets "
                f"train.folds; a cross-validation cannot be resumed. Start it again with "
                f"`dltrain train --folds {r.train.folds}`."
            )
        what = f"Resuming {resume_dir}" if resume_dir else f"Training [bold]{r.name}[/]"
        console.print(
            f"{what}: {r.model.family} · {r.train.optimizer.name.value} "
            f"lr {r.train.optimizer.learning_rate:g} ({r.train.lr_schedule.name.value}) · "
            f"{r.train.epochs} epochs · batch {r.train.batch_size} · seed {r.seed}",
            highlight=False,
        )
        # What a killed `dltrain train` of this recipe left half-written (never a live run's).
        remove_stale_run_partials(workdir(), r.name)
        with console.status("Loading TensorFlow and the prepared data …"):
            from dltrain.training.device import cluster_from_env
            from dltrain.training.fit import train as train_model
        cluster = cluster_from_env()
        if cluster is not None:
            console.print(
                f"TF_CONFIG: this is {cluster.task_type} {cluster.task_index} of "
                f"{cluster.num_workers} workers{' (the chief)' if cluster.is_chief else ''}; "
                f"training starts once every worker has joined.",
                highlight=False,
            )
        if r.train.folds:
            from dltrain.cli.folds import train_folds

            train_folds(loaded, workdir(), console, recipe, json_)
            return
        result = train_model(loaded, workdir(), console, resume_dir=resume_dir)
        warnings = _baseline_warnings(result, r.evaluate.batch_size, console)
        show_result(console, result, recipe, json_, warnings)


def _baseline_warnings(result: TrainResult, batch_size: int, console: Console) -> list[str]:
    """Warnings when the new model does no better than the trivial baseline (class prior,
    training mean, naive forecast) on the validation split; recorded in run.json.

    A check that cannot run (the prepared data gone meanwhile) says why on stderr and fails
    nothing: the run itself is saved and sound.
    """
    if not result.chief:
        return []
    from dltrain.errors import DltrainError
    from dltrain.evaluation.baselines.after_training import check_against_trivial

    try:
        with console.status("Comparing with the trivial baseline on the validation split …"):
            return check_against_trivial(result.run_dir, batch_size)
    except DltrainError as exc:
        console.print(f"[dim]No baseline check: {exc.message}[/]", highlight=False)
        return []


def show_result(
    console: Console,
    result: TrainResult,
    recipe: str | None,
    json_: bool,
    warnings: list[str] | None = None,
) -> None:
    """Say how training ended and what comes next; with ``json_``, the result on stdout.

    Args:
        console: where the human output goes.
        result: what ``train`` returned.
        recipe: ``--recipe`` as typed, for the next command it suggests.
        json_: also write the result as one JSON document on stdout.
        warnings: what to say out loud beside the run's own warnings (the model no better than
            a trivial baseline).
    """
    if result.stopped_by == "time_budget":
        console.print("[yellow]Stopped at the time budget.[/]")
    if result.best_epoch is not None:
        console.print(
            f"Best {result.monitor} {result.best_value:.4f} at epoch {result.best_epoch} of "
            f"{result.epochs_run}; the saved model holds that epoch's weights.",
            highlight=False,
        )
    calibration = result.calibration
    if calibration is not None:
        console.print(
            f"Temperature scaling: T = {calibration.temperature:.4g}, fitted on the "
            f"{calibration.fitted_on} split (log loss {calibration.log_loss_before:.4f} → "
            f"{calibration.log_loss_after:.4f}); the saved model applies it.",
            highlight=False,
        )
    for warning in [*result.warnings, *(warnings or [])]:
        console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False)
    if result.chief:
        console.print(
            f"[green]Saved[/] {result.run_dir} in {format_duration(result.seconds)}. "
            f"Next: dltrain evaluate{' --recipe ' + recipe if recipe else ''}",
            highlight=False,
        )
    else:
        console.print(
            f"[green]Done[/] in {format_duration(result.seconds)}, one of {result.num_workers} "
            f"workers; "
            f"the chief saved the run. Weights sha256 {result.weights_sha256}.",
            highlight=False,
        )
    if json_:
        workers = {
            "num_workers": result.num_workers,
            "chief": result.chief,
            "weights_sha256": result.weights_sha256,
        }
        write_json(
            {
                "run": str(result.run_dir) if result.chief else None,  # others' is scratch
                "workers": workers if result.num_workers > 1 else None,  # TF_CONFIG
                "epochs_run": result.epochs_run,
                "stopped_by": result.stopped_by,
                "best": {
                    "monitor": result.monitor,
                    "epoch": result.best_epoch,
                    "value": result.best_value,
                },
                "final": result.final_logs,
                "seconds": round(result.seconds, 2),
                "calibration": None if calibration is None else calibration.to_json(),
                "warnings": [*result.warnings, *(warnings or [])],
            }
        )


_RESUMABLE = ("train.epochs", "train.time_budget")


def _resumable(recipe: str | None, run: Path | None, flags: Flags) -> tuple[Path, LoadedRecipe]:
    """The run to resume and its own recipe, with --epochs/--time-budget applied."""
    if run is not None:
        run_dir = resolve_path(run, workdir())
    else:
        run_dir = latest_unfinished_run(workdir(), load(recipe, None).recipe.name)
    overrides = [(k, flags[k]) for k in _RESUMABLE if flags.get(k) is not None]
    from dltrain.recipe.load import load_recipe

    return run_dir, load_recipe(RunFolder(run_dir).recipe, overrides)


def _dry_run(loaded: LoadedRecipe, console: Console, json_: bool) -> None:
    from rich.table import Table

    from dltrain.training.dryrun import dry_run, format_bytes

    report = dry_run(loaded, workdir())
    size = report.size
    console.print("\n".join(size.summary), markup=False, highlight=False)
    table = Table(title="Dry run (nothing trained)", title_justify="left", show_header=False)
    table.add_row("parameters", f"{size.parameters:,} ({size.trainable_parameters:,} trainable)")
    table.add_row(
        "activations per batch",
        f"≈ {size.activation_bytes / 2**20:,.1f} MiB at batch {loaded.recipe.train.batch_size}",
    )
    table.add_row(
        "memory",
        f"weights {format_bytes(size.weight_bytes)}, training ≈ "
        f"{format_bytes(size.training_bytes)} of {size.memory.where}",
    )
    table.add_row("steps per epoch", f"{report.steps_per_epoch:,}")
    table.add_row("device", report.device)
    rates = "  ".join(f"e{epoch}: {rate:.3g}" for epoch, rate in report.learning_rates)
    table.add_row("learning rate", rates)
    table.add_row("time", _timing_text(report.timing, report.not_timed))
    console.print(table)
    if json_:
        write_json(
            {
                "parameters": size.parameters,
                "trainable_parameters": size.trainable_parameters,
                "activation_bytes_per_batch": size.activation_bytes,
                "weight_bytes": size.weight_bytes,
                "training_bytes": size.training_bytes,
                "memory_bytes": size.memory.bytes,
                "steps_per_epoch": report.steps_per_epoch,
                "learning_rates": [
                    {"epoch": e, "learning_rate": r} for e, r in report.learning_rates
                ],
                "device": report.device,
                "timing": None if report.timing is None else report.timing.to_json(),
                "not_timed": report.not_timed,
            }
        )


def _timing_text(timing: EpochTime | None, not_timed: str | None) -> str:
    """An epoch's estimated time with its uncertainty, the run's, and what they rest on."""
    if timing is None:
        return f"not timed: {not_timed}"
    train = timing.train
    validation = timing.validation
    seen = f"{len(train.seconds)} timed steps after {timing.warmup_steps} warm-up"
    steps = f"{timing.steps_per_epoch:,} × {train.mean * 1e3:,.1f} ms"
    if validation is not None:
        steps += f" + {timing.validation_steps:,} validation × {validation.mean * 1e3:,.1f} ms"
    epoch = f"{format_duration(timing.epoch_seconds)} ± {format_duration(timing.epoch_error)}"
    total = f"{format_duration(timing.total_seconds)} ± {format_duration(timing.total_error)}"
    text = f"≈ {epoch} per epoch ({steps}; {seen}), ≈ {total} for {timing.epochs} epochs"
    if timing.budget_seconds is not None:
        budget = format_duration(timing.budget_seconds)
        text += f"; the {budget} time budget holds ≈ {timing.epochs_in_budget} of them"
    return text
