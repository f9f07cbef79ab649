"""``dltrain compare``: named runs side by side, their recipes' differences and their metrics
beside the baselines ``evaluate`` measured. Light: reads run folders' YAML and JSON only.

Example:
    >>> [d.key for d in recipe_differences([{"train": {"epochs": 2}}, {"train": {"epochs": 3}}])]
    ['train.epochs']
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltrain.errors import RunError, UsageError
from dltrain.evaluation.catalog import KEY_METRICS, Better, Metrics, better
from dltrain.evaluation.compare import RunRow, read_run
from dltrain.runs import RunFolder


class _Absent:
    """A key one recipe has and another does not (written by another dltrain version)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class RecipeDifference:
    """A recipe key, by dotted path, whose value is not the same in every run."""

    key: str
    values: list[Any]  # one per run, in the runs' order; ABSENT where a run lacks the key

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "values": [None if v is ABSENT else v for v in self.values]}


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{dotted.path: value}``; lists and empty mappings are values.

    Example:
        >>> flatten({"train": {"optimizer": {"name": "adam"}, "epochs": 2}})
        {'train.optimizer.name': 'adam', 'train.epochs': 2}
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def recipe_differences(recipes: Sequence[Mapping[str, Any]]) -> list[RecipeDifference]:
    """The keys whose values differ between recipes, in the order the recipes list them.

    Args:
        recipes: each run's resolved recipe, as read from its recipe.yaml.

    Returns:
        One entry per differing key; nothing for keys all recipes share with one value.
    """
    flats = [flatten(recipe) for recipe in recipes]
    keys = dict.fromkeys(key for flat in flats for key in flat)
    differences = []
    for key in keys:
        values = [flat.get(key, ABSENT) for flat in flats]
        if any(not _same(values[0], value) for value in values[1:]):
            differences.append(RecipeDifference(key, values))
    return differences


def _same(a: Any, b: Any) -> bool:
    if a is ABSENT or b is ABSENT:
        return a is b
    # 0.001 and 1e-3, 2 and 2.0 are the same setting; True is not 1
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


@dataclass
class Comparison:
    """Runs side by side: what their recipes set differently and how they scored.

    Attributes:
        split: whose metrics (test, validation, train).
        task: the task every run answers.
        runs: each run's facts and metrics, in the order named.
        differences: the recipe keys that differ.
        metrics: the metric names shown, in order.
        baselines: evaluate's baselines on the same examples (the first run's that has them).
        notes: what qualifies the comparison.
    """

    split: str
    task: str
    runs: list[RunRow]
    differences: list[RecipeDifference]
    metrics: list[str]
    baselines: dict[str, Metrics] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """A column heading per run: its id, with its recipe's folder when ids repeat."""
        names = [row.run for row in self.runs]
        if len(set(names)) == len(names):
            return names
        return [f"{row.path.parent.name}/{row.run}" for row in self.runs]

    def best(self, metric: str) -> int | None:
        """The index of the run best on ``metric``; None for a tie, a metric that is not a
        score, or fewer than two runs measured."""
        direction = better(metric)
        values = [(row.metrics.get(metric), i) for i, row in enumerate(self.runs)]
        scored = [(v, i) for v, i in values if isinstance(v, int | float)]
        if direction is Better.NEITHER or len(scored) < 2:
            return None
        pick = max if direction is Better.HIGHER else min
        top = pick(v for v, _ in scored)
        winners = [i for v, i in scored if v == top]
        return winners[0] if len(winners) == 1 else None

    def _metric_json(self, name: str) -> dict[str, Any]:
        best = self.best(name)
        return {
            "metric": name,
            "values": [row.metrics.get(name) for row in self.runs],
            "best": None if best is None else self.runs[best].run,
            "baselines": {b: values.get(name) for b, values in self.baselines.items()},
        }

    def to_json(self) -> dict[str, Any]:
        """The document ``dltrain compare --json`` writes."""
        return {
            "split": self.split,
            "task": self.task,
            "runs": [row.to_json() for row in self.runs],
            "differences": [difference.to_json() for difference in self.differences],
            "metrics": [self._metric_json(name) for name in self.metrics],
            "baselines": self.baselines,
            "notes": self.notes,
        }


def compare_runs(paths: Sequence[Path], split: str, metrics: Sequence[str] = ()) -> Comparison:
    """Read the named runs and set them side by side.

    Args:
        paths: two or more run folders.
        split: whose metrics to compare.
        metrics: the metric rows to show; empty: the task's key metrics.

    Returns:
        The comparison.

    Raises:
        UsageError: fewer than two runs, runs of different tasks, or an unknown ``metrics`` name.
        RunError: a folder that is not a run, or a run with no metrics on ``split``.
        RecipeError: a run's recipe.yaml that cannot be read.
    """
    if len(paths) < 2:
        raise UsageError(
            f"compare needs at least two runs; received {len(paths)}. Name them as "
            f"`dltrain compare runs/<recipe>/<id> runs/<recipe>/<other id>`."
        )
    rows = [_read_evaluated(path, split) for path in paths]
    tasks = {row.task for row in rows}
    if len(tasks) > 1:
        found = ", ".join(f"{row.run}: {row.task}" for row in rows)
        raise UsageError(
            f"These runs answer different tasks ({found}); their metrics do not compare. Compare "
            f"runs of one task, such as runs of the same recipe."
        )
    from dltrain.recipe.load import read_recipe_yaml

    recipes = [read_recipe_yaml(RunFolder(row.path).recipe) for row in rows]
    task = str(rows[0].task)
    with_baselines = [row for row in rows if row.baselines]
    comparison = Comparison(
        split=split,
        task=task,
        runs=rows,
        differences=recipe_differences(recipes),
        metrics=_metric_rows(rows, task, metrics),
        baselines=with_baselines[0].baselines if with_baselines else {},
    )
    if any(row.baselines != comparison.baselines for row in with_baselines):
        comparison.notes.append(
            f"The runs' baselines differ (their {split} examples are not the same data); the "
            f"baseline columns are {with_baselines[0].run}'s."
        )
    without = [row.run for row in rows if not row.baselines]
    if with_baselines and without:
        comparison.notes.append(
            f"No baselines in the metrics of {', '.join(without)} (evaluated by an older "
            f"dltrain); evaluate again to add them."
        )
    return comparison


def _read_evaluated(path: Path, split: str) -> RunRow:
    """One run folder with its metrics on ``split``, or a clear error."""
    files = RunFolder(path)
    if not path.is_dir():
        raise RunError(
            f"Run folder {path} does not exist. Expected a folder written by `dltrain train`, "
            f"such as runs/<recipe>/<run id>/."
        )
    if not files.info.is_file() or not files.recipe.is_file():
        raise RunError(
            f"{path} is not a run folder (it has no {files.info.name} and {files.recipe.name}). "
            f"Name folders written by `dltrain train`, such as runs/<recipe>/<run id>/."
        )
    row = read_run(path, split)
    if not row.metrics:
        flag = "" if split == "test" else f" --split {split}"
        raise RunError(
            f"Run {path} has no metrics on the {split} split ({files.metrics(split).name} is "
            f"missing). Evaluate it first: `dltrain evaluate --run {path}{flag}`."
        )
    return row


def _metric_rows(rows: list[RunRow], task: str, asked: Sequence[str]) -> list[str]:
    """The asked metrics, checked; else the task's key metrics any run reports (else all)."""
    known = list(dict.fromkeys(name for row in rows for name in row.metrics))
    for name in asked:
        if name not in known:
            guess = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {guess[0]!r}?" if guess else ""
            raise UsageError(
                f"--metric {name!r} is not a metric of these runs.{hint} Their metrics: "
                f"{', '.join(sorted(known))}."
            )
    if asked:
        return list(asked)
    key = [name for name in KEY_METRICS.get(task, ()) if name in known]
    return key or known


def format_value(value: Any) -> str:
    """A recipe value or a metric as a cell: numbers short, lists and mappings as JSON."""
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"  # a setting as it was written: 0.001, 1e-05, 0.5
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def metric_cell(value: Any) -> str:
    """A metric's cell: four decimals (large values in full), ``-`` where there is none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: the recipes' differences, then the metrics beside the
    baselines (the best run's value in bold).

    Returns:
        The report, ending in a newline.
    """
    labels = comparison.labels
    lines = [
        f"### dltrain compare · {len(comparison.runs)} runs · {comparison.task} · "
        f"{comparison.split} split",
        "",
        "#### Recipe differences",
        "",
    ]
    if comparison.differences:
        lines += _markdown_table(
            ["key", *labels],
            [
                [f"`{d.key}`", *(f"`{format_value(v)}`" for v in d.values)]
                for d in comparison.differences
            ],
        )
    else:
        lines.append("The runs' recipes are the same.")
    baseline_names = list(comparison.baselines)
    rows = []
    for name in comparison.metrics:
        best = comparison.best(name)
        cells = [metric_cell(row.metrics.get(name)) for row in comparison.runs]
        if best is not None:
            cells[best] = f"**{cells[best]}**"
        baselines = [metric_cell(comparison.baselines[b].get(name)) for b in baseline_names]
        rows.append([name, *cells, *baselines])
    lines += ["", f"#### Metrics ({comparison.split} split)", ""]
    lines += _markdown_table(["metric", *labels, *(f"baseline.{b}" for b in baseline_names)], rows)
    lines += [""] + [f"> {note}" for note in comparison.notes]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]
