"""The evaluation as Markdown, for a CI job to post on a pull request. Light (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_MATRIX = 15  # larger confusion matrices do not fit a pull-request comment


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]], align: str = "") -> list[str]:
    marks = [":--" if i == 0 else "--:" for i in range(len(header))] if not align else list(align)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(document: dict[str, Any]) -> str:
    """A Markdown report of a metrics document: verdict, metrics, gates, baseline, detail.

    Args:
        document: the metrics document ``evaluate`` writes.

    Returns:
        The report, one section after another, ending in a newline.
    """
    sections = (
        _title,
        _verdict,
        _metrics,
        _threshold,
        _gates,
        _baseline,
        _per_class,
        _confusion_matrix,
        _per_target_and_step,
        _plots,
    )
    lines = [line for section in sections for line in section(document)]
    return "\n".join(lines).rstrip() + "\n"


def _title(document: dict[str, Any]) -> list[str]:
    where = document.get("split") or Path(str(document.get("data", {}).get("path", "data"))).name
    title = (
        f"### dltrain evaluate · {document.get('recipe')} · run `{Path(document['run']).name}` · "
        f"{where} ({document['num_examples']:,} examples, {document.get('task')})"
    )
    return [title, ""]


def _verdict(document: dict[str, Any]) -> list[str]:
    """How many gates and baseline comparisons passed; nothing when there were none."""
    gates, baseline = document.get("gates") or [], document.get("baseline")
    checks = len(gates) + (len(baseline["comparisons"]) if baseline else 0)
    if not checks:
        return []
    failed = sum(not g["passed"] for g in gates)
    if baseline:
        failed += sum(not c["passed"] for c in baseline["comparisons"])
    verdict = "✅ **passed**" if document.get("passed") else "❌ **failed**"
    return [f"{verdict}: {checks - failed} of {checks} checks passed.", ""]


def _metrics(document: dict[str, Any]) -> list[str]:
    """The headline metrics, with their bootstrap intervals when there are any."""
    intervals = document.get("intervals") or {}
    header = ["metric", "value"] + (
        [f"{document['bootstrap']['confidence']:.0%} CI"] if intervals else []
    )
    rows = []
    for name, value in document["metrics"].items():
        row = [name, value]
        if intervals:
            ci = intervals.get(name)
            row.append(f"{ci['low']:.4f} – {ci['high']:.4f}" if ci else "")
        rows.append(row)
    return _table(header, rows) + [""]


def _threshold(document: dict[str, Any]) -> list[str]:
    threshold = document.get("threshold")
    if not threshold or threshold.get("source") == "default":
        return []
    return [
        f"Decision threshold **{threshold['value']:.4g}** ({threshold.get('objective')}, "
        f"chosen on the {threshold.get('chosen_on')} split).",
        "",
    ]


def _gates(document: dict[str, Any]) -> list[str]:
    gates = document.get("gates") or []
    if not gates:
        return []
    table = _table(
        ["gate", "value", "result"],
        [[g["gate"], g["value"], "✅ pass" if g["passed"] else "❌ fail"] for g in gates],
    )
    return ["**Gates**", "", *table, ""]


def _baseline(document: dict[str, Any]) -> list[str]:
    baseline = document.get("baseline")
    if not baseline:
        return []
    table = _table(
        ["metric", "this run", "baseline", "change", "result"],
        [
            [
                c["metric"],
                c["value"],
                c["baseline"],
                "n/a" if c["change"] is None else f"{c['change']:+.4f}",
                "✅" if c["passed"] else "❌",
            ]
            for c in baseline["comparisons"]
        ],
    )
    heading = f"**Baseline** `{Path(baseline['run']).name}` (tolerance {baseline['tolerance']:g})"
    return [heading, "", *table, ""]


def _per_class(document: dict[str, Any]) -> list[str]:
    if not document.get("per_class"):
        return []
    table = _table(
        ["class", "precision", "recall", "f1", "roc_auc", "support"],
        [
            [r["class"], r["precision"], r["recall"], r["f1"], r.get("roc_auc"), r["support"]]
            for r in document["per_class"]
        ],
    )
    return ["<details><summary>Per class</summary>", "", *table, "", "</details>", ""]


def _confusion_matrix(document: dict[str, Any]) -> list[str]:
    matrix = document.get("confusion_matrix")
    if not matrix or len(matrix["labels"]) > MAX_MATRIX:
        return []
    table = _table(
        ["", *matrix["labels"]],
        [[label, *row] for label, row in zip(matrix["labels"], matrix["counts"], strict=True)],
    )
    summary = "<details><summary>Confusion matrix (rows: true, columns: predicted)</summary>"
    return [summary, "", *table, "", "</details>", ""]


def _per_target_and_step(document: dict[str, Any]) -> list[str]:
    """Regression's per-target and forecasting's per-step rows, each as a table."""
    lines: list[str] = []
    for key, column in (("per_target", "target"), ("per_step", "step")):
        if document.get(key):
            rows = document[key]
            names = [k for k in rows[0] if k != column]
            lines += _table([column, *names], [[r[column], *(r[n] for n in names)] for r in rows])
            lines.append("")
    return lines


def _plots(document: dict[str, Any]) -> list[str]:
    if not document.get("plots"):
        return []
    return ["Plots in the run folder: " + ", ".join(f"`{p}`" for p in document["plots"]), ""]
