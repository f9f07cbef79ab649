"""dltrain find-lr: the LR range test for the recipe's model → a plot and a suggested rate.

Its own command rather than ``train --find-lr``: it writes no run, takes sweep options of its own,
and its answer is meant to be read (or scripted with --json) before choosing train's --lr.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    SetOption,
    load,
    reported_errors,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import TrainingFailed, UsageError
from dltrain.recipe.choices import OptimizerName

if TYPE_CHECKING:
    from dltrain.recipe import LoadedRecipe
    from dltrain.training.lr_finder import LrFinderReport, RangeTestSpec


def find_lr(
    recipe: RecipeOption = None,
    start_lr: Annotated[
        float, typer.Option("--start-lr", help="The sweep's first learning rate.")
    ] = 1e-7,
    end_lr: Annotated[
        float, typer.Option("--end-lr", help="The sweep's last learning rate.")
    ] = 10.0,
    steps: Annotated[
        int, typer.Option("--steps", help="Training batches the sweep takes (at most).")
    ] = 200,
    optimizer: Annotated[
        OptimizerName | None,
        typer.Option("--optimizer", help="train.optimizer.name", show_default=False),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="train.batch_size", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed", show_default=False)] = None,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Sweep the learning rate up on the training split; plot loss vs rate and suggest one.

    Trains a copy of the recipe's model (its optimizer, loss, batch size; not its schedule).

    Writes runs/<recipe>/lr-finder/lr_finder.png and lr_finder.json.
    """
    console = make_console()
    with reported_errors(console):
        # --end-lr inf passes 0 < start < end and sweeps into a NaN loss (exit 1, "training
        # failed"); it is a bad flag, said before TensorFlow loads
        if not (math.isfinite(start_lr) and math.isfinite(end_lr)):
            raise UsageError(
                f"--start-lr {start_lr:g} and --end-lr {end_lr:g} must be finite learning rates, "
                f"for example --start-lr 1e-6 --end-lr 1."
            )
        flags = {
            "train.optimizer.name": optimizer.value if optimizer else None,
            "train.batch_size": batch_size,
            "seed": seed,
        }
        loaded = load(recipe, sets, flags)
        r = loaded.recipe
        with console.status("Loading TensorFlow …"):
            from dltrain.training.lr_finder import RangeTestSpec
        try:
            spec = RangeTestSpec(
                start_learning_rate=start_lr, end_learning_rate=end_lr, num_steps=steps
            )
        except ValueError as exc:
            raise UsageError(
                f"{exc}. Expected 0 < --start-lr < --end-lr and --steps of at least 10, for "
                f"example --start-lr 1e-6 --end-lr 1 --steps 100."
            ) from None
        console.print(
            f"LR range test for [bold]{r.name}[/]: {r.model.family} · "
            f"{r.train.optimizer.name.value} · batch {r.train.batch_size} · "
            f"{start_lr:.0e} → {end_lr:.0e} over at most {steps} steps",
            highlight=False,
        )
        report = sweep(console, loaded, spec)
        show_range_test(console, report, spec, recipe, json_)


def sweep(console: Console, loaded: LoadedRecipe, spec: RangeTestSpec) -> LrFinderReport:
    """Run the range test with a progress bar on ``console``.

    Args:
        console: where the bar draws.
        loaded: the recipe.
        spec: the sweep.

    Returns:
        Where the plot and curve were written, and the result.
    """
    from dltrain.training.lr_finder import find_learning_rate

    with Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("sweep", total=spec.num_steps, stats="")

        def on_step(step: int, rate: float, loss: float) -> None:
            progress.update(bar, completed=step + 1, stats=f"lr {rate:.1e}  loss {loss:.4f}")

        return find_learning_rate(loaded, workdir(), spec, on_step)


def show_range_test(
    console: Console, report: LrFinderReport, spec: RangeTestSpec, recipe: str | None, json_: bool
) -> None:
    """Say why the sweep stopped and which rate it suggests; with ``json_``, on stdout too.

    Args:
        console: where the human output goes.
        report: the range test's files and result.
        spec: the sweep.
        recipe: ``--recipe`` as typed, for the train command it suggests.
        json_: also write the answer as one JSON document on stdout.

    Raises:
        TrainingFailed: the loss never fell, so there is no rate to suggest.
    """
    result = report.result
    endings = {
        "completed": "the loss had not blown up by the last rate",
        "diverged": f"the smoothed loss rose to {spec.divergence_factor:g}x its minimum",
        "non_finite": "the loss became NaN or infinite",
    }
    console.print(
        f"Swept {len(result.learning_rates)} steps; stopped because "
        f"{endings[result.stopped]}. Plot: {report.plot}",
        highlight=False,
    )
    if json_:
        write_json(
            {
                "recipe": report.recipe,
                "suggestion": result.suggestion,
                "rule": "minimum / 10",
                "minimum_learning_rate": result.minimum_learning_rate,
                "steepest_learning_rate": result.steepest_learning_rate,
                "stopped": result.stopped,
                "steps_run": len(result.learning_rates),
                "plot": str(report.plot),
                "curve": str(report.curve),
            }
        )
    start_lr, end_lr = spec.start_learning_rate, spec.end_learning_rate
    if result.suggestion is None:
        raise TrainingFailed(
            f"The loss never fell while the learning rate grew from {start_lr:g} to "
            f"{result.learning_rates[-1] if result.learning_rates else start_lr:g}, so there "
            f"is no rate to suggest (see {report.plot}). Start lower (--start-lr "
            f"{start_lr / 100:g}), take more steps (--steps {spec.num_steps * 2}), or check that "
            f"the loss and data are right by training a few epochs."
        )
    recipe_flag = f" --recipe {recipe}" if recipe else ""
    console.print(
        f"[green]Suggested learning rate {result.suggestion:.2g}[/] (a tenth of "
        f"{result.minimum_learning_rate:.2g}, where the loss was lowest; the loss fell "
        f"fastest at {result.steepest_learning_rate:.2g}, a more cautious choice). Use it: "
        f"dltrain train{recipe_flag} --lr {result.suggestion:.2g}",
        highlight=False,
    )
    if result.stopped == "completed":
        console.print(
            f"The loss did not blow up before --end-lr {end_lr:g}; if its minimum sits at the "
            f"right edge of the plot, rerun with a higher --end-lr.",
            highlight=False,
        )
