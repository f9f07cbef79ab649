"""The evaluation as Markdown, for a CI job to post on a pull request. Light (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dltrain.evaluation.metrics import Cell
    from dltrain.evaluation.result import MetricsDocument

MAX_MATRIX = 15  # larger confusion matrices do not fit a pull-request comment


def format_cell(value: Cell) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[Cell]], align: str = "") -> list[str]:
    marks = [":--" if i == 0 else "--:" for i in range(len(header))] if not align else list(align)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(format_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(document: MetricsDocument) -> str:
    """A Markdown report of a metrics document: verdict, metrics, gates, baseline, detail.

    Args:
        document: the metrics document ``evaluate`` writes.

    Returns:
        The report, one section after another, ending in a newline.
    """
    sections = (
        _title,
        _verdict,
        _warnings,
        metrics_section,
        calibration_section,
        _threshold,
        _gates,
        _baseline,
        _per_class,
        _confusion_matrix,
        detail_section,
        importance_section,
        _plots,
    )
    lines = [line for section in sections for line in section(document)]
    return "\n".join(lines).rstrip() + "\n"


def _title(document: MetricsDocument) -> list[str]:
    where = document.split or Path(str(document.data.get("path", "data"))).name
    title = (
        f"### dltrain evaluate · {document.recipe} · run `{document.run.name}` · "
        f"{where} ({document.num_examples:,} examples, {document.task})"
    )
    return [title, ""]


def _verdict(document: MetricsDocument) -> list[str]:
    """How many gates and baseline comparisons passed; nothing when there were none."""
    comparisons = document.baseline.comparisons if document.baseline else []
    checks = len(document.gates) + len(comparisons)
    if not checks:
        return []
    failed = sum(not g.passed for g in document.gates) + sum(not c.passed for c in comparisons)
    verdict = "✅ **passed**" if document.passed else "❌ **failed**"
    return [f"{verdict}: {checks - failed} of {checks} checks passed.", ""]


def metrics_section(document: MetricsDocument) -> list[str]:
    """The headline metrics, with their bootstrap intervals when there are any, and each
    baseline's beside them."""
    intervals = document.intervals
    header = ["metric", "value"]
    if intervals and document.bootstrap is not None:
        header.append(f"{document.bootstrap.confidence:.0%} CI")
    header += [f"baseline: {name}" for name in document.baselines]
    rows: list[list[Cell]] = []
    for name, value in document.scores.metrics.items():
        row: list[Cell] = [name, value]
        if intervals:
            ci = intervals.get(name)
            row.append(f"{ci.low:.4f} – {ci.high:.4f}" if ci else "")
        row += [metrics.get(name) for metrics in document.baselines.values()]
        rows.append(row)
    notes = [f"_Baselines: {note.rstrip('.')}._" for note in document.baseline_notes]
    if document.tta is not None:  # the figures are of averaged views, not of one pass
        notes.insert(0, f"_{document.tta.describe()}_")
    return markdown_table(header, rows) + [""] + ([*notes, ""] if notes else [])


def calibration_section(document: MetricsDocument) -> list[str]:
    """A temperature-scaled model's calibration error and log loss without and with T."""
    calibration = document.calibration
    if calibration is None:
        return []
    heading = (
        f"**Temperature scaling** T = {calibration.temperature:.4g} (fitted on the "
        f"{calibration.fitted_on} split at training)"
    )
    table = markdown_table(
        ["metric", "without T", "with T"],
        [
            ["expected_calibration_error", calibration.ece_before, calibration.ece_after],
            ["log_loss", calibration.log_loss_before, calibration.log_loss_after],
        ],
    )
    return [heading, "", *table, ""]


MAX_IMPORTANCE_ROWS = 30


def _signed(value: float) -> str:
    """A change with its sign: 4 decimals, 2 in large units (a price's RMSE)."""
    return f"{value:+,.2f}" if abs(value) >= 100 else f"{value:+.4f}"


def importance_section(document: MetricsDocument) -> list[str]:
    """Permutation importance: each column's drop of the deciding metric, with its interval."""
    importance = document.importance
    if importance is None:
        return []
    sample = (
        f" (a seeded sample of {importance.num_examples:,})"
        if importance.num_rows < importance.num_examples
        else ""
    )
    heading = (
        f"**Permutation importance**: drop of {importance.metric} (unshuffled "
        f"{importance.value:.4f}) when a column is shuffled; {importance.repeats} shuffles of "
        f"{importance.num_rows:,} rows{sample}; 95% interval: mean ± 1.96·sd/√K"
    )
    rows: list[list[Cell]] = [
        [c.column, _signed(c.drop), f"{_signed(c.low)} – {_signed(c.high)}"]
        for c in importance.columns[:MAX_IMPORTANCE_ROWS]
    ]
    return [heading, "", *markdown_table(["column", "drop", "95% interval"], rows), ""]


def _warnings(document: MetricsDocument) -> list[str]:
    """The evaluation's warnings (a model no better than a trivial baseline, a tiny split)."""
    return [line for warning in document.warnings for line in (f"> ⚠️ {warning}", "")]


def _threshold(document: MetricsDocument) -> list[str]:
    threshold = document.threshold
    if threshold is None or threshold.is_default:
        return []
    return [
        f"Decision threshold **{threshold.value:.4g}** ({threshold.objective}, "
        f"chosen on the {threshold.chosen_on} split).",
        "",
    ]


def _gates(document: MetricsDocument) -> list[str]:
    if not document.gates:
        return []
    table = markdown_table(
        ["gate", "value", "result"],
        [[g.gate.text, g.value, "✅ pass" if g.passed else "❌ fail"] for g in document.gates],
    )
    return ["**Gates**", "", *table, ""]


def _baseline(document: MetricsDocument) -> list[str]:
    baseline = document.baseline
    if baseline is None:
        return []
    table = markdown_table(
        ["metric", "this run", "baseline", "change", "result"],
        [
            [
                c.metric,
                c.value,
                c.baseline,
                "n/a" if c.change is None else f"{c.change:+.4f}",
                "✅" if c.passed else "❌",
            ]
            for c in baseline.comparisons
        ],
    )
    heading = f"**Baseline** `{baseline.run.name}` (tolerance {baseline.tolerance:g})"
    return [heading, "", *table, ""]


def _per_class(document: MetricsDocument) -> list[str]:
    per_class = document.scores.per_class
    if not per_class:
        return []
    table = markdown_table(
        ["class", "precision", "recall", "f1", "roc_auc", "support"],
        [[r.name, r.precision, r.recall, r.f1, r.roc_auc, r.support] for r in per_class],
    )
    return ["<details><summary>Per class</summary>", "", *table, "", "</details>", ""]


def _confusion_matrix(document: MetricsDocument) -> list[str]:
    matrix = document.scores.confusion_matrix
    if matrix is None or len(matrix.labels) > MAX_MATRIX:
        return []
    table = markdown_table(
        ["", *matrix.labels],
        [[label, *row] for label, row in zip(matrix.labels, matrix.counts, strict=True)],
    )
    summary = "<details><summary>Confusion matrix (rows: true, columns: predicted)</summary>"
    return [summary, "", *table, "", "</details>", ""]


def detail_section(document: MetricsDocument) -> list[str]:
    """Regression's per-target and forecasting's per-step rows, each as a table."""
    lines: list[str] = []
    for table in document.scores.detail_tables:
        if table.rows:
            names = table.metric_names
            rows: list[list[Cell]] = [[r.key, *(r.values[n] for n in names)] for r in table.rows]
            lines += markdown_table([table.column, *names], rows)
            lines.append("")
    return lines


def _plots(document: MetricsDocument) -> list[str]:
    if not document.plots:
        return []
    return ["Plots in the run folder: " + ", ".join(f"`{p}`" for p in document.plots), ""]
