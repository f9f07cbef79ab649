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
    """A Markdown report of a metrics document: verdict, metrics, gates, baseline, detail."""
    where = document.get("split") or Path(str(document.get("data", {}).get("path", "data"))).name
    title = (
        f"### dltrain evaluate · {document.get('recipe')} · run `{Path(document['run']).name}` · "
        f"{where} ({document['num_examples']:,} examples, {document.get('task')})"
    )
    lines = [title, ""]
    gates, baseline = document.get("gates") or [], document.get("baseline")
    checks = len(gates) + (len(baseline["comparisons"]) if baseline else 0)
    if checks:
        failed = sum(not g["passed"] for g in gates)
        if baseline:
            failed += sum(not c["passed"] for c in baseline["comparisons"])
        verdict = "✅ **passed**" if document.get("passed") else "❌ **failed**"
        lines += [f"{verdict}: {checks - failed} of {checks} checks passed.", ""]

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
    lines += _table(header, rows) + [""]

    threshold = document.get("threshold")
    if threshold and threshold.get("source") != "default":
        lines += [
            f"Decision threshold **{threshold['value']:.4g}** ({threshold.get('objective')}, "
            f"chosen on the {threshold.get('chosen_on')} split).",
            "",
        ]
    if gates:
        lines += ["**Gates**", ""]
        lines += _table(
            ["gate", "value", "result"],
            [[g["gate"], g["value"], "✅ pass" if g["passed"] else "❌ fail"] for g in gates],
        )
        lines.append("")
    if baseline:
        lines += [
            f"**Baseline** `{Path(baseline['run']).name}` (tolerance {baseline['tolerance']:g})",
            "",
        ]
        lines += _table(
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
        lines.append("")
    if document.get("per_class"):
        lines += ["<details><summary>Per class</summary>", ""]
        lines += _table(
            ["class", "precision", "recall", "f1", "roc_auc", "support"],
            [
                [r["class"], r["precision"], r["recall"], r["f1"], r.get("roc_auc"), r["support"]]
                for r in document["per_class"]
            ],
        )
        lines += ["", "</details>", ""]
    matrix = document.get("confusion_matrix")
    if matrix and len(matrix["labels"]) <= MAX_MATRIX:
        lines += [
            "<details><summary>Confusion matrix (rows: true, columns: predicted)</summary>",
            "",
        ]
        lines += _table(
            ["", *matrix["labels"]],
            [[label, *row] for label, row in zip(matrix["labels"], matrix["counts"], strict=True)],
        )
        lines += ["", "</details>", ""]
    for key, column in (("per_target", "target"), ("per_step", "step")):
        if document.get(key):
            rows_ = document[key]
            names = [k for k in rows_[0] if k != column]
            lines += _table([column, *names], [[r[column], *(r[n] for n in names)] for r in rows_])
            lines.append("")
    if document.get("plots"):
        lines += ["Plots in the run folder: " + ", ".join(f"`{p}`" for p in document["plots"]), ""]
    return "\n".join(lines).rstrip() + "\n"
