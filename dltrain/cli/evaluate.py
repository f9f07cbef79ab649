"""dltrain evaluate: a run's metrics as tables for people, JSON or Markdown for machines, and
gates whose exit code CI can trust."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    RunOption,
    SetOption,
    TrackOption,
    TtaOption,
    collect_overrides,
    from_workdir,
    render_input_report,
    reported_errors,
    track_flags,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import DltrainError, GatesFailed, RunError, UsageError
from dltrain.recipe.choices import SplitName
from dltrain.recipe.gates import parse_gate
from dltrain.runs import resolve_recipe_and_run

if TYPE_CHECKING:  # the evaluation modules load NumPy and TensorFlow; the CLI stays light
    from dltrain.evaluation.gates import BaselineResult
    from dltrain.evaluation.importance import Importance
    from dltrain.evaluation.metrics import Cell, ClassScores, ConfusionMatrix, DetailTable
    from dltrain.evaluation.request import EvaluationRequest
    from dltrain.evaluation.result import CalibrationSummary, Evaluation, MetricsDocument
    from dltrain.evaluation.threshold import ThresholdSummary

MAX_TABLE_CLASSES = 20  # wider confusion matrices do not fit a terminal; the PNG has them


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    MODEL_CARD = "model-card"  # the run's MODEL_CARD.md, also on stdout


def evaluate(
    recipe: RecipeOption = None,
    run: RunOption = None,
    split: Annotated[
        SplitName | None,
        typer.Option(
            "--split", help="Split to evaluate (default: evaluate.split, test).", show_default=False
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Labelled raw data (file or folder, like the training source) to evaluate on "
            "instead of a prepared split; it goes through the model's own preprocessing.",
            show_default=False,
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            help='Gate, e.g. "accuracy>=0.9" or "recall\\[cat]>=0.8" (repeatable; adds to '
            "evaluate.require). Exit 1 when one fails.",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="Another run to compare with on the same examples; exit 1 when a key metric "
            "drops by more than --tolerance.",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Largest allowed drop versus --baseline, in the metric's units (default: "
            "evaluate.tolerance, 0).",
            show_default=False,
        ),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            help="Bootstrap resamples for 95% confidence intervals (e.g. 1000).",
            show_default=False,
        ),
    ] = None,
    optimize_threshold: Annotated[
        str | None,
        typer.Option(
            "--optimize-threshold",
            help="Binary classifiers: choose the decision threshold on the validation split and "
            "store it in the run (predict uses it): f1, accuracy, balanced_accuracy, "
            "precision@recall=0.9, recall@precision=0.9.",
            show_default=False,
        ),
    ] = None,
    plots: Annotated[
        bool | None,
        typer.Option("--plots/--no-plots", help="Write PNG plots (default: evaluate.plots)."),
    ] = None,
    importance: Annotated[
        bool | None,
        typer.Option(
            "--importance/--no-importance",
            help="Tables: permutation feature importance, the deciding metric's drop when each "
            "input column is shuffled (default: evaluate.importance).",
            show_default=False,
        ),
    ] = None,
    importance_repeats: Annotated[
        int | None,
        typer.Option(
            "--importance-repeats",
            help="Shuffles per column for --importance (default: evaluate.importance_repeats, 5).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            help="Fixes the bootstrap resamples and a GAN's generated images (default: the "
            "recipe's seed).",
            show_default=False,
        ),
    ] = None,
    report_format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="stdout: nothing (table: tables on stderr only), the JSON document, a "
            "Markdown report for a pull request, or the model card (model-card: also written "
            "as MODEL_CARD.md in the run folder).",
        ),
    ] = ReportFormat.TABLE,
    track: TrackOption = None,
    tta: TtaOption = 1,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Evaluate a run's model; saves metrics.json, plots and report.md in the run folder."""
    console = make_console()
    with reported_errors(console):
        _refuse_conflicts(json_, report_format, data, split)
        tracking = track_flags(track)  # refuses a bad --track before anything is evaluated
        flags = {
            "evaluate.split": split.value if split else None,
            "evaluate.bootstrap": bootstrap,
            "evaluate.tolerance": tolerance,
            "evaluate.plots": plots,
            "evaluate.importance": importance,
            "evaluate.importance_repeats": importance_repeats,
            "seed": seed,
        }
        overrides = collect_overrides(sets, flags)
        loaded, run_dir = resolve_recipe_and_run(recipe, run, workdir(), overrides)
        spec = loaded.recipe.evaluate
        log_it = track is not None or _tracked(run_dir, loaded.recipe.train.tracking.value)
        if log_it:
            from dltrain.tracking import require_mlflow

            require_mlflow()  # before evaluating, not after
        from dltrain.evaluation.request import EvaluationRequest
        from dltrain.evaluation.threshold import parse_objective

        request = EvaluationRequest(
            run_dir=run_dir,
            spec=spec,
            seed=loaded.recipe.seed,
            gates=tuple(parse_gate(text) for text in [*spec.require, *(require or [])]),
            optimize_threshold=parse_objective(optimize_threshold) if optimize_threshold else None,
            baseline=None if baseline is None else _baseline_folder(baseline, loaded.recipe.name),
            data=None if data is None else from_workdir(data),
            tta=tta,
            input=loaded.recipe.train.input,
        )
        what = f"--data {data}" if data else f"the {spec.split.value} split"
        result = _evaluate_with_status(request, what, console)
        render(result.document, console)
        console.print(f"Saved {result.metrics_path}", highlight=False)
        _write_stdout(result.document, ReportFormat.JSON if json_ else report_format, console)
        if log_it:
            card = report_format == ReportFormat.MODEL_CARD
            uri = tracking.get("train.tracking_uri") or loaded.recipe.train.tracking_uri
            _log_to_mlflow(result, run_dir, str(uri) if uri else None, card, console)
        if not result.passed:
            raise _gates_failed(result, what, run_dir)


def _tracked(run_dir: Path, recipe_tracking: str) -> bool:
    """Whether the run logs to MLflow without --track: its training did, or its recipe says so."""
    from dltrain.runs import RunFolder

    if recipe_tracking == "mlflow":
        return True
    try:
        return RunFolder(run_dir).read_info().mlflow is not None
    except DltrainError:
        return False


def _log_to_mlflow(
    result: Evaluation, run_dir: Path, uri: str | None, card: bool, console: Console
) -> None:
    """Log the evaluation to the run's MLflow run; a failure is a warning, never an exit."""
    from dltrain.tracking.evaluation import log_evaluation

    with console.status("Logging to MLflow …"):
        warnings = log_evaluation(
            run_dir, workdir(), result.document.to_json(), result.metrics_path, uri, card
        )
    for warning in warnings:
        console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False)


def _refuse_conflicts(
    json_: bool, report_format: ReportFormat, data: Path | None, split: SplitName | None
) -> None:
    """Refuse flags that contradict each other, before any recipe or run is read.

    Raises:
        UsageError: --json with --format markdown or model-card, or --data with --split.
    """
    if json_ and report_format in (ReportFormat.MARKDOWN, ReportFormat.MODEL_CARD):
        raise UsageError(
            f"--json and --format {report_format.value} both write stdout; choose one."
        )
    if data is not None and split is not None:
        raise UsageError(
            f"--data {data} and --split {split.value} both say what to evaluate on; give one."
        )


def _baseline_folder(baseline: Path, recipe_name: str) -> Path:
    """The --baseline run folder, read from the working directory.

    Raises:
        RunError: no such folder.
    """
    folder = from_workdir(baseline)
    if not folder.is_dir():
        raise RunError(
            f"Baseline run folder {baseline} does not exist. Expected a run folder such "
            f"as runs/{recipe_name}/<run id>/ (`dltrain runs` lists them)."
        )
    return folder


def _evaluate_with_status(request: EvaluationRequest, what: str, console: Console) -> Evaluation:
    """Run the evaluation behind a status line that names each stage."""
    with console.status(f"Evaluating {request.run_dir} on {what} …") as status:
        from dltrain.evaluation.evaluate import evaluate as evaluate_model

        return evaluate_model(request, status=lambda message: status.update(f"{message} …"))


def _write_stdout(document: MetricsDocument, report_format: ReportFormat, console: Console) -> None:
    """The JSON document, the Markdown report or the model card (written into the run folder
    too) on stdout; nothing for the table format."""
    if report_format == ReportFormat.JSON:
        write_json(document.to_json())
    elif report_format == ReportFormat.MARKDOWN:
        from dltrain.evaluation.report import render_markdown

        sys.stdout.write(render_markdown(document))
        sys.stdout.flush()
    elif report_format == ReportFormat.MODEL_CARD:
        from dltrain.evaluation.model_card import write_model_card

        card = write_model_card(document)
        console.print(f"Saved {card.path}", highlight=False)
        sys.stdout.write(card.text)
        sys.stdout.flush()


def _gates_failed(result: Evaluation, what: str, run_dir: Path) -> GatesFailed:
    failures = result.failures()
    return GatesFailed(
        f"{len(failures)} check(s) failed on {what} of run {run_dir.name}: "
        f"{'; '.join(failures)}. The metrics are saved in {result.metrics_path}; exit "
        f"code 1 tells CI not to ship this model."
    )


def _value(value: Cell) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        # scores read best with 4 decimals; errors in a target's units (house prices) do not
        if abs(value) >= 100_000:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(document: MetricsDocument, console: Console) -> None:
    """Headline metrics (with intervals), task detail, threshold, gates and baseline tables."""
    console.print(_headline_table(document))
    if document.calibration is not None:
        console.print(_calibration_line(document.calibration), highlight=False)
    if document.threshold is not None and not document.threshold.is_default:
        console.print(_threshold_line(document.threshold, document.task), highlight=False)
    if document.tta is not None:
        console.print(
            f"Test-time augmentation: probabilities averaged over {document.tta.num_views} views "
            f"of each image (flips: {', '.join(f for f in document.tta.to_json()['flips'])}; "
            f"shifts up to {document.tta.shift} px).",
            highlight=False,
        )
    scores = document.scores
    if scores.per_class:
        console.print(_per_class_table(scores.per_class))
        if scores.confusion_matrix and len(scores.confusion_matrix.labels) <= MAX_TABLE_CLASSES:
            console.print(_confusion_table(scores.confusion_matrix))
    for detail in scores.detail_tables:
        if detail.rows:
            console.print(_detail_table(detail))
    if document.gates:
        gates = _table("Gates", ("gate", "value", "result"))
        for gate in document.gates:
            verdict = "[green]pass[/]" if gate.passed else "[bold red]FAIL[/]"
            gates.add_row(escape(gate.gate.text), _value(gate.value), verdict)
        console.print(gates)
    if document.baseline is not None:
        console.print(_baseline_table(document.baseline))
    if document.importance is not None:
        console.print(_importance_table(document.importance))
    if document.plots:
        console.print(f"Plots: {', '.join(document.plots)} (in {document.run})", highlight=False)
    render_input_report(console, document.inputs, document.num_examples)
    read = document.data.get("input")
    if isinstance(read, dict) and read.get("path") == "stream":
        console.print(
            f"[dim]Input: the split streamed from its {read.get('shards')} shard files in order "
            f"({escape(str(read.get('reason')))}).[/]",
            highlight=False,
        )
    for note in document.baseline_notes:
        console.print(f"[dim]Baselines: {escape(note)}[/]", highlight=False)
    for warning in document.warnings:
        console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False)


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A table whose first column is left-aligned and the others, numbers, right-aligned."""
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    return table


def _headline_table(document: MetricsDocument) -> Table:
    where = document.split or f"data {Path(str(document.data['path'])).name}"
    title = (
        f"{document.recipe} · {document.run.name} · {where} "
        f"({document.num_examples:,} examples, {document.task})"
    )
    headline = Table(title=escape(title), title_justify="left")
    headline.add_column("metric")
    headline.add_column("value", justify="right")
    intervals = document.intervals
    if intervals:
        headline.add_column("95% interval", justify="right")
    for baseline in document.baselines:  # beside the model: what it must beat
        headline.add_column(baseline, justify="right", style="dim")
    for name, value in document.scores.metrics.items():
        row = [name, _value(value)]
        if intervals:
            ci = intervals.get(name)
            row.append(f"{_value(ci.low)} – {_value(ci.high)}" if ci else "")
        row += [_value(metrics.get(name)) for metrics in document.baselines.values()]
        headline.add_row(*row)
    return headline


def _calibration_line(calibration: CalibrationSummary) -> str:
    return (
        f"Temperature scaling: T = {calibration.temperature:.4g} (fitted on the "
        f"{calibration.fitted_on} split at training). Expected calibration error "
        f"{_value(calibration.ece_before)} without it, {_value(calibration.ece_after)} with it; "
        f"log loss {_value(calibration.log_loss_before)} → {_value(calibration.log_loss_after)}."
    )


MAX_IMPORTANCE_ROWS = 30  # the most important columns; metrics.json and the PNG have the rest


def _signed(value: float) -> str:
    """A change with its sign, read like ``_value``: 4 decimals, fewer in large units."""
    return f"{value:+,.2f}" if abs(value) >= 100 else f"{value:+.4f}"


def _importance_table(importance: Importance) -> Table:
    rows = f"{importance.num_rows:,} rows"
    if importance.num_rows < importance.num_examples:
        rows += f" (a seeded sample of the {importance.num_examples:,}: evaluate.importance_rows)"
    title = (
        f"Permutation importance: drop of {importance.metric} "
        f"({_value(importance.value)}) when a column is shuffled · {importance.repeats} shuffles "
        f"of {rows} · 95% interval: mean ± 1.96·sd/√K"
    )
    table = _table(title, ("column", "drop", "95% interval"))
    for row in importance.columns[:MAX_IMPORTANCE_ROWS]:
        interval = f"{_signed(row.low)} – {_signed(row.high)}"
        table.add_row(escape(row.column), _signed(row.drop), interval)
    left_out = len(importance.columns) - MAX_IMPORTANCE_ROWS
    if left_out > 0:
        table.caption = f"{left_out} more columns in the metrics file"
    return table


def _threshold_line(threshold: ThresholdSummary, task: str) -> str:
    kind = "Anomaly" if task == "reconstruction" else "Decision"
    where = (
        "chosen now and stored in threshold.json"
        if threshold.source == "chosen now"
        else "read from threshold.json"
    )
    return (
        f"{kind} threshold {threshold.value:.4g} ({threshold.objective} on the "
        f"{threshold.chosen_on} split; {where})."
    )


def _detail_table(detail: DetailTable) -> Table:
    """Regression's per-target or forecasting's per-step metrics."""
    names = detail.metric_names
    table = Table(title=f"Per {detail.column}", title_justify="left")
    for name in [detail.column, *names]:
        table.add_column(name, justify="left" if name == detail.column else "right")
    for row in detail.rows:
        table.add_row(str(row.key), *(_value(row.values[n]) for n in names))
    return table


def _baseline_table(baseline: BaselineResult) -> Table:
    title = f"Versus baseline {baseline.run.name} (tolerance {baseline.tolerance:g})"
    table = _table(title, ("metric", "this run", "baseline", "change", "result"))
    for c in baseline.comparisons:
        change = "n/a" if c.change is None else f"{c.change:+.4f}"
        verdict = "[green]ok[/]" if c.passed else "[bold red]DROP[/]"
        table.add_row(c.metric, _value(c.value), _value(c.baseline), change, verdict)
    return table


def _per_class_table(per_class: list[ClassScores]) -> Table:
    table = _table("Per class", ("class", "precision", "recall", "f1", "roc_auc", "support"))
    for row in per_class:
        table.add_row(
            escape(row.name),
            _value(row.precision),
            _value(row.recall),
            _value(row.f1),
            _value(row.roc_auc),
            f"{row.support:,}",
        )
    return table


def _confusion_table(confusion: ConfusionMatrix) -> Table:
    matrix = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
    matrix.add_column("")
    for label in confusion.labels:
        matrix.add_column(escape(label), justify="right")
    for i, (label, row) in enumerate(zip(confusion.labels, confusion.counts, strict=True)):
        matrix.add_row(
            escape(label), *(f"[bold]{c}[/]" if j == i else str(c) for j, c in enumerate(row))
        )
    return matrix
