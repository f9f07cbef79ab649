"""dltrain tune: search the recipe's `tune.space` with Optuna; every trial is a `dltrain train`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from dltrain.cli.common import (
    JsonOption,
    PrintRecipeOption,
    RecipeOption,
    SetOption,
    TrackOption,
    collect_overrides,
    print_recipe,
    reported_errors,
    track_flags,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import NoTrialCompleted
from dltrain.recipe.durations import format_duration

if TYPE_CHECKING:
    from dltrain.recipe.tune import ParamSpec
from dltrain.recipe.choices import ParamKind, PrunerName, SamplerName

if TYPE_CHECKING:
    from dltrain.tuning.plan import StudyStart, TunePlan
    from dltrain.tuning.records import TrialRecord
    from dltrain.tuning.report import TuneReport
    from dltrain.tuning.runner import TuneEvent, TuneOutcome
    from dltrain.tuning.space import Params

LIVE_ROWS = 12  # finished trials kept in the live table, besides the running ones


def tune(
    recipe: RecipeOption = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials", help="tune.num_trials: trials in the whole study.", show_default=False
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="tune.timeout: start no trial after this long (seconds, or 90m, 2h).",
            show_default=False,
        ),
    ] = None,
    sampler: Annotated[
        SamplerName | None,
        typer.Option("--sampler", help="tune.sampler", show_default=False),
    ] = None,
    pruner: Annotated[
        PrunerName | None,
        typer.Option("--pruner", help="tune.pruner", show_default=False),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", help="Trials to run at once on this machine, each in its own process."
        ),
    ] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Study database URL shared by tuners (postgresql://user:pass@host/db). "
            "Default: runs/<recipe>/tune/study.db (SQLite).",
            show_default=False,
        ),
    ] = None,
    study_name: Annotated[
        str | None,
        typer.Option(
            "--study-name",
            help="Name of the study (default: tune.study_name, else the recipe's name).",
            show_default=False,
        ),
    ] = None,
    new_study: Annotated[
        bool,
        typer.Option(
            "--new-study",
            help="Start a fresh study rather than resuming one: the study's name if free, else "
            "<name>-2, <name>-3, … (printed); the old study is left as it was.",
        ),
    ] = False,
    sets: SetOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check the search space and show it; run no trial."),
    ] = False,
    track: TrackOption = None,
    print_recipe_: PrintRecipeOption = False,
    json_: JsonOption = False,
) -> None:
    """Search the recipe's tune.space with Optuna: pruned, resumable, parallel, distributed.

    Running it again resumes the study; several tuners given the same --storage share it.
    """
    console = make_console()
    with reported_errors(console, secret_url=storage):
        flags = {
            "tune.num_trials": trials,
            "tune.timeout": timeout,
            "tune.sampler": sampler.value if sampler else None,
            "tune.pruner": pruner.value if pruner else None,
            **track_flags(track),
        }
        overrides = collect_overrides(sets, flags)
        from dltrain.recipe.load import find_recipe, load_recipe

        loaded = load_recipe(find_recipe(recipe), overrides)
        if print_recipe_:
            print_recipe(loaded)
            return
        if loaded.recipe.train.tracking.value == "mlflow":
            from dltrain.tracking import require_mlflow

            require_mlflow()
        from dltrain.tuning.plan import plan_study

        plan = plan_study(
            loaded,
            overrides,
            workdir(),
            storage=storage,
            study_name=study_name,
            jobs=jobs,
            new_study=new_study,
        )
        show_plan(console, plan)
        if dry_run:
            console.print("[green]The search space is valid.[/] --dry-run: no trial was run.")
            if json_:
                write_json(_plan_document(plan))
            return
        from dltrain.tracking.study import close_study_run, open_study_run
        from dltrain.tuning.plan import start_study
        from dltrain.tuning.report import build_report
        from dltrain.tuning.runner import run_trials
        from dltrain.tuning.storage import storage_errors

        # A database that turns read-only, fills up or goes away mid-session is named, not a bug.
        with storage_errors(plan.storage_url):
            with console.status("Preparing the data and opening the study …"):
                start = start_study(plan)
            plan = start.plan  # the study actually opened: --new-study may have named another
            study_run = open_study_run(plan)
            if study_run is not None:
                plan = replace(plan, mlflow_parent=study_run.ref)
            show_start(console, plan, start)
            board = TrialBoard(console, plan)
            with board:
                outcome = run_trials(plan, start, board.handle)
            with console.status("Writing the report and plots …"):
                report = build_report(plan, outcome)
        show_report(console, plan, outcome, report)
        if study_run is not None:
            for warning in close_study_run(study_run, plan, report):
                console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False)
        if json_:
            write_json(report.document)
        if outcome.interrupted:
            raise KeyboardInterrupt
        if report.best is None:
            raise NoTrialCompleted(
                f"No trial of study '{plan.study_name}' completed "
                f"({_counts(report.counts)}), so there is no best recipe. The reasons are in the "
                f"table above and in {plan.files.trials_csv}; each trial's log is in "
                f"{plan.files.trials}/<number>/train.log."
            )


# --- rendering ------------------------------------------------------------------------------------


def _leaf(paths: list[str]) -> dict[str, str]:
    """Short column names: the last part of each path, unless two paths share it."""
    leaves = [p.rsplit(".", 1)[-1] for p in paths]
    return {
        p: (leaf if leaves.count(leaf) == 1 else p) for p, leaf in zip(paths, leaves, strict=True)
    }


def _describe(param: ParamSpec) -> str:
    if param.kind is ParamKind.CHOICE:
        text = "choice of " + ", ".join(_fmt(c) for c in param.choices or [])
    else:
        low, high = param.low, param.high
        integer = param.kind in (ParamKind.INT, ParamKind.LOG_INT)
        ends = f"[{int(low or 0)}, {int(high or 0)}]" if integer else f"[{low:g}, {high:g}]"
        text = f"{param.kind.value} {ends}"
        if param.step is not None:
            text += f" step {param.step:g}"
    if param.when:
        text += "  when " + ", ".join(
            f"{k} in {', '.join(_fmt(v) for v in vals)}" for k, vals in param.when.items()
        )
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _counts(counts: dict[str, int]) -> str:
    order = ("complete", "pruned", "fail", "running", "waiting")
    return ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)) or "no trials"


def _duration_cell(seconds: float | None) -> str:
    """A duration for a table cell or sentence; empty when unknown (a trial that never ran)."""
    return "" if seconds is None else format_duration(seconds)


def show_plan(console: Console, plan: TunePlan) -> None:
    spec = plan.spec
    budget = []
    if plan.num_trials is not None:
        budget.append(f"{plan.num_trials} trials")
    if spec.timeout:
        budget.append(f"at most {_duration_cell(spec.timeout)}")
    if spec.folds:  # a cross-validated trial reports once, at its end: nothing to prune on
        pruning = f"{spec.folds}-fold cross-validation, no pruning"
    elif spec.pruner is PrunerName.NONE:
        pruning = "no pruning"
    else:
        pruning = f"{spec.pruner.value} pruning from epoch {spec.min_epochs} of {plan.max_epochs}"
    console.print(
        f"Tuning [bold]{escape(plan.loaded.recipe.name)}[/]: {spec.resolved_direction.value} "
        f"{spec.objective} · {spec.sampler.value} · {pruning} · {' · '.join(budget)}"
        f"{f' · {plan.jobs} at once' if plan.jobs > 1 else ''}",
        highlight=False,
    )
    console.print(
        f"Study '{escape(plan.study_name)}' in {escape(plan.storage_shown)}",
        highlight=False,
    )
    table = Table(title="Search space", title_justify="left")
    table.add_column("parameter")
    table.add_column("distribution")
    for path, param in plan.space.params.items():
        table.add_row(path, escape(_describe(param)))
    console.print(table)
    if plan.grid_size is not None:
        console.print(f"The grid has {plan.grid_size} points.", highlight=False)


def show_start(console: Console, plan: TunePlan, start: StudyStart) -> None:
    if start.data_prepared:
        console.print(f"Prepared the data once for every trial: data/{plan.loaded.recipe.name}/")
    if start.opened.passed_over:
        passed = ", ".join(f"'{escape(n)}'" for n in start.opened.passed_over)
        console.print(
            f"[yellow]Study {passed}[/] was started from a different recipe and every trial in "
            f"it failed, so there is nothing to compare with: this recipe's trials go to study "
            f"'{escape(plan.study_name)}' instead (the failed one is kept, with its logs). "
            f"Running tune again with this recipe resumes '{escape(plan.study_name)}'.",
            highlight=False,
        )
    if start.opened.created:
        console.print(f"Started a new study '{escape(plan.study_name)}'.", highlight=False)
    else:
        console.print(
            f"Resuming study '{escape(plan.study_name)}': it holds {start.existing} trial(s); "
            f"new trials add to them.",
            highlight=False,
        )
    if start.recovered:
        numbers = ", ".join(str(n) for n in start.recovered)
        console.print(
            f"Trial(s) {numbers} were cut short when their tuner stopped; they run again first.",
            highlight=False,
        )


@dataclass
class _BoardRow:
    """One trial of the live table: running (its epoch and value so far), or finished."""

    params: Params
    started: float  # time.monotonic() when it started
    epoch: str | None = None  # "3/10"
    value: float | None = None  # the objective at the last epoch
    record: TrialRecord | None = None  # set once it finished


class TrialBoard:
    """The live table of trials on a terminal; one line per finished trial otherwise (CI logs)."""

    def __init__(self, console: Console, plan: TunePlan) -> None:
        self.console = console
        self.plan = plan
        self.names = _leaf(list(plan.space.params))
        self.lock = threading.Lock()
        self.rows: dict[int, _BoardRow] = {}
        self.live: Live | None = None
        if console.is_terminal and not console.is_dumb_terminal:
            self.live = Live(
                get_renderable=self._render,
                console=console,
                refresh_per_second=2,
                transient=False,
            )

    def __enter__(self) -> TrialBoard:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def handle(self, event: TuneEvent) -> None:
        """Take one event from a worker thread (thread-safe)."""
        from dltrain.tuning.runner import TrialFinished, TrialProgress, TrialStarted

        with self.lock:
            if isinstance(event, TrialStarted):
                self.rows[event.number] = _BoardRow(event.params, time.monotonic())
                if self.live is None:  # CI logs: say what is running, not only what finished
                    again = (
                        f" (again, for trial {event.retry_of})"
                        if event.retry_of is not None
                        else ""
                    )
                    params = self._params(event.params)
                    self.console.print(
                        escape(f"trial {event.number:>3}  started{again}  {params}"),
                        highlight=False,
                    )
            elif isinstance(event, TrialProgress):
                row = self.rows.setdefault(event.number, _BoardRow({}, time.monotonic()))
                row.epoch, row.value = f"{event.epoch}/{event.epochs}", event.value
            elif isinstance(event, TrialFinished):
                record = event.record
                self.rows[record.number] = _BoardRow(record.params, 0.0, record=record)
                if self.live is None:
                    self.console.print(self._line(record), highlight=False)

    def _params(self, params: Params) -> str:
        return "  ".join(f"{self.names.get(k, k)}={_fmt(v)}" for k, v in params.items())

    def _line(self, r: TrialRecord) -> str:
        params = self._params(r.params)
        value = f"{self.plan.spec.objective} {r.value:.4f}" if r.value is not None else ""
        where = ""
        if r.state == "pruned" and r.pruned_at_epoch:
            where = f"at epoch {r.pruned_at_epoch}"
        elif r.epochs_run:
            where = f"{r.epochs_run} epochs"
        took = _duration_cell(r.seconds)
        parts = [f"trial {r.number:>3}", f"{r.state:<8}", value, where, took, params]
        line = "  ".join(p for p in parts if p)
        if r.reason:
            line += f"\n           {r.reason}"
        return escape(line)

    def _render(self) -> Table:
        spec = self.plan.spec
        table = Table(
            title=f"Trials ({spec.objective}, {spec.resolved_direction.value})",
            title_justify="left",
        )
        for name in ("#", "state", spec.objective, "epochs", "pruned at", "time"):
            table.add_column(name, justify="right" if name != "state" else "left")
        for leaf in self.names.values():
            table.add_column(leaf)
        with self.lock:
            items = sorted(self.rows.items())
        running = [(n, row) for n, row in items if row.record is None]
        done = [(n, row) for n, row in items if row.record is not None][-LIVE_ROWS:]
        for number, row in [*done, *running]:
            record = row.record
            if record is not None:
                value = f"{record.value:.4f}" if record.value is not None else ""
                style = {"complete": "green", "pruned": "yellow", "fail": "red"}.get(record.state)
                state = f"[{style}]{record.state}[/]" if style else record.state
                cells = [
                    str(number),
                    state,
                    value,
                    str(record.epochs_run or ""),
                    str(record.pruned_at_epoch or ""),
                    _duration_cell(record.seconds),
                ]
                params = record.params
            else:
                value = f"{row.value:.4f}" if row.value is not None else ""
                elapsed = time.monotonic() - row.started
                cells = [
                    str(number),
                    "[cyan]running[/]",
                    value,
                    row.epoch or "",
                    "",
                    _duration_cell(elapsed),
                ]
                params = row.params
            cells += [escape(_fmt(params[p])) if p in params else "" for p in self.names]
            table.add_row(*cells)
        return table


def show_report(console: Console, plan: TunePlan, outcome: TuneOutcome, report: TuneReport) -> None:
    document = report.document
    session = document["session"]
    rate = session["trials_per_hour"]
    console.print(
        f"Study '{escape(plan.study_name)}': {len(report.records)} trial(s) "
        f"({_counts(report.counts)}). This session ran {session['trials_run']} in "
        f"{_duration_cell(outcome.seconds)}{f' ({rate:g} trials/hour)' if rate else ''}; "
        f"stopped because {outcome.stop_reason or 'it was done'}.",
        highlight=False,
    )
    names = _leaf(list(plan.space.params))
    if report.leaderboard:
        table = Table(title="Leaderboard", title_justify="left")
        for column in ("rank", "trial", plan.spec.objective, "epoch", "time"):
            table.add_column(column, justify="right")
        for leaf in names.values():
            table.add_column(leaf)
        for rank, r in enumerate(report.leaderboard, start=1):
            table.add_row(
                str(rank),
                str(r.number),
                f"{r.value:.4f}" if r.value is not None else "",
                str(r.best_epoch or ""),
                _duration_cell(r.seconds),
                *(escape(_fmt(r.params[p])) if p in r.params else "" for p in names),
            )
        console.print(table)
    if report.importances:
        table = Table(title="Parameter importances", title_justify="left")
        table.add_column("parameter")
        table.add_column("importance", justify="right")
        table.add_column("")
        for path, weight in report.importances.items():
            table.add_row(path, f"{weight:.3f}", "█" * max(1, round(weight * 30)))
        console.print(table)
    elif report.importances_note:
        console.print(f"No parameter importances: {report.importances_note}.", highlight=False)
    failed = [r for r in report.records if r.state == "fail"]
    for r in failed[-5:]:
        console.print(f"[red]trial {r.number} failed:[/] {escape(r.reason or '')}", highlight=False)
    if report.best is not None and report.best_recipe is not None:
        best = report.best
        console.print(
            f"[green]Best[/] trial {best.number}: {plan.spec.objective} {best.value:.4f}"
            f"{f' (run {best.run_dir})' if best.run_dir else ''}.",
            highlight=False,
        )
        hparams = f" (HParams: tensorboard --logdir {report.hparams})" if report.hparams else ""
        console.print(
            f"Wrote {report.best_recipe}, {len(report.plots)} plot(s), trials.csv and "
            f"summary.json in {plan.study_dir}{hparams}. "
            f"Next: dltrain train --recipe {report.best_recipe}",
            highlight=False,
        )


def _plan_document(plan: TunePlan) -> dict[str, Any]:
    return {
        "study": plan.study_name,
        "storage": plan.storage_shown,
        "objective": plan.spec.objective,
        "direction": plan.spec.resolved_direction.value,
        "sampler": plan.spec.sampler.value,
        "pruner": plan.spec.pruner.value,
        "num_trials": plan.num_trials,
        "timeout": plan.spec.timeout,
        "grid_size": plan.grid_size,
        "max_epochs": plan.max_epochs,
        "space": {path: param.model_dump(mode="json") for path, param in plan.space.params.items()},
    }
