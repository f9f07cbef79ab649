"""The model card's sections, each a function of the card's sources returning Markdown lines.
Light (no TensorFlow); the tables are report.py's, so the card and the report read alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dltrain import __version__
from dltrain.evaluation.baselines.verdicts import DECIDING, WHAT
from dltrain.evaluation.catalog import Better, better
from dltrain.evaluation.report import (
    detail_section,
    format_cell,
    importance_section,
    markdown_table,
    metrics_section,
)
from dltrain.manifest import (
    ImageFeatures,
    ImagePreprocessing,
    Manifest,
    NumericTarget,
    SequenceFeatures,
    TableFeatures,
    TextFeatures,
    TextPreprocessing,
)

if TYPE_CHECKING:
    from dltrain.evaluation.metrics import Cell, ClassScores, ConfusionMatrix
    from dltrain.evaluation.model_card import CardSources

WEAKEST = 3  # classes named as the weakest by recall and by F1
CONFUSED_PAIRS = 5  # most frequent (true, predicted) mistakes shown
MAX_SHARE_COLUMNS = 12  # classes whose shares fit a table; beyond, the smallest and largest
TRAINING_PREFIX = "training: "  # how evaluate repeats run.json's warnings in its own

Section = Callable[["CardSources"], list[str]]


def render_model_card(sources: CardSources) -> str:
    """The model card's Markdown, one section after another, ending in a newline.

    Args:
        sources: the run's records and the evaluation's document.
    """
    sections: tuple[Section, ...] = (
        _title,
        _data,
        _preprocessing,
        _training,
        _metrics,
        _baselines,
        _calibration,
        _importance,
        _weaknesses,
        _warnings,
        _footer,
    )
    lines = [line for section in sections for line in section(sources)]
    return "\n".join(lines).rstrip() + "\n"


def _facts(rows: list[tuple[str, Cell]]) -> list[str]:
    """A two-column table of named facts, leaving out those not recorded."""
    kept = [f"| {name} | {format_cell(value)} |" for name, value in rows if value is not None]
    return ["| | |", "| :-- | :-- |", *kept, ""] if kept else []


def _title(sources: CardSources) -> list[str]:
    document, info = sources.document, sources.info
    family = sources.recipe.model.family if sources.recipe is not None else "model"
    lines = [f"# Model card: {document.recipe} · run `{document.run.name}`", ""]
    description = sources.recipe.description if sources.recipe is not None else ""
    if description:
        lines += [description, ""]
    trained = f"trained {info.started}" if info.started else "trained"
    where = f"the {document.split} split" if document.split else "raw data"
    lines.append(
        f"A **{document.task}** model ({family} family), {trained}, evaluated "
        f"{document.evaluated} on {where} ({document.num_examples:,} examples)."
    )
    if sources.missing:
        lines += ["", f"_Not recorded for this run: {'; '.join(sources.missing)}._"]
    return [*lines, ""]


def _data(sources: CardSources) -> list[str]:
    manifest = sources.manifest
    if manifest is None:
        return []
    source = manifest.source
    size = sum(f.bytes for f in source.files)
    lines = ["## Data and splits", ""]
    lines += _facts(
        [
            (
                "source",
                f"`{source.path}` ({source.format.value}, {len(source.files):,} file(s), "
                f"{size:,} bytes)",
            ),
            ("fingerprint", f"`{source.fingerprint}`"),
            ("prepared", f"{manifest.created} by dltrain {manifest.dltrain_version}"),
            ("splits the source shipped", ", ".join(manifest.source_splits)),
            ("sampling of the training split", manifest.sampling.value),
        ]
    )
    lines += _split_table(manifest)
    cleaning = manifest.cleaning
    notes = [f"{n:,} {why} row(s) dropped" for why, n in cleaning.dropped_rows.items() if n]
    notes += [
        f"`{f.column}`: {f.missing:,} missing value(s) filled ({f.strategy.value})"
        for f in cleaning.filled
        if f.missing
    ]
    notes += cleaning.notes + [f"duplicates: {cleaning.duplicates}"]
    lines += ["Cleaning:", "", *(f"- {note}" for note in notes), ""]
    return lines


def _split_table(manifest: Manifest) -> list[str]:
    """Each split's size and, for classes, each class's share of it."""
    classes = manifest.classes
    splits = manifest.splits
    header = ["split", "examples"]
    wide = 0 < len(classes) <= MAX_SHARE_COLUMNS
    if wide:
        header += [f"`{c}`" for c in classes]
    elif classes:
        header += ["smallest class", "largest class"]
    rows: list[list[Cell]] = []
    for name, split in splits.items():
        row: list[Cell] = [name, split.num_examples]
        counts = split.class_counts
        if counts and split.num_examples:
            shares = [c / split.num_examples for c in counts]
            if wide:
                row += [f"{s:.1%}" for s in shares]
            else:
                low, high = (
                    min(range(len(shares)), key=shares.__getitem__),
                    max(range(len(shares)), key=shares.__getitem__),
                )
                row += [f"{classes[low]} {shares[low]:.1%}", f"{classes[high]} {shares[high]:.1%}"]
        rows.append(row)
    return [*markdown_table(header, rows), ""]


def _preprocessing(sources: CardSources) -> list[str]:
    manifest = sources.manifest
    if manifest is None:
        return []
    features, pre = manifest.features, manifest.preprocessing
    lines = ["## Preprocessing", ""]
    lines.append(
        "Everything below was fitted on the training split only and is rebuilt inside the "
        "model's first layers: `model.keras` takes raw inputs."
    )
    lines.append("")
    if isinstance(features, ImageFeatures) and isinstance(pre, ImagePreprocessing):
        low, high = pre.pixel_range
        scaled_low, scaled_high = pre.value_range()
        lines += _facts(
            [
                ("input", f"images {'×'.join(str(d) for d in features.shape)} ({features.dtype})"),
                ("raw pixel range", f"{low:g} – {high:g}"),
                ("scaling", f"{pre.scaling.value}: onto {scaled_low:g} – {scaled_high:g}"),
            ]
        )
    elif isinstance(features, TableFeatures):
        rows: list[list[Cell]] = [
            [
                f"`{c.name}`",
                c.type.value,
                "yes" if c.used else "no (passed through)",
                f"`{c.model_key}`",
            ]
            for c in features.columns
        ]
        lines += ["Input columns (as your data spells them) and the Keras input each feeds:", ""]
        lines += [*markdown_table(["column", "kind", "used", "model input"], rows), ""]
    elif isinstance(features, TextFeatures) and isinstance(pre, TextPreprocessing):
        lines += _facts(
            [
                ("input", f"text column `{features.column}`"),
                ("vocabulary", f"{features.vocabulary_size:,} tokens"),
                ("tokens per text", features.sequence_length),
                ("standardize", pre.standardize.value),
                (
                    "tokens",
                    f"{pre.split.value} 1-{pre.ngrams}-grams"
                    if pre.ngrams > 1
                    else pre.split.value,
                ),
                (
                    "bag beside the encoder",
                    f"{len(pre.bag.vocabulary) + 1:,} {pre.bag.split.value} "
                    f"1-{pre.bag.ngrams}-grams ({pre.bag.standardize.value})"
                    if pre.bag is not None
                    else None,
                ),
            ]
        )
    elif isinstance(features, SequenceFeatures):
        lines += _facts(
            [
                ("input", f"windows of {features.shape[0]} steps × {features.shape[1]} features"),
                ("features", ", ".join(f"`{c}`" for c in features.columns)),
                ("time column", f"`{features.time_column}`"),
                ("frequency", features.frequency),
            ]
        )
    target = ", ".join(f"`{n}`" for n in manifest.target_names) or "the class folders / labels"
    numeric = manifest.target if isinstance(manifest.target, NumericTarget) else None
    if numeric is not None and numeric.transform is not None:  # data.target_transform
        target += f" (learnt as its {numeric.transform.name.value}; predicted in its own units)"
    lines += [f"Target: {target}.", ""]
    return lines


def _training(sources: CardSources) -> list[str]:
    info, recipe = sources.info, sources.recipe
    best = info.best
    rows: list[tuple[str, Cell]] = []
    if recipe is not None:
        train, optimizer = recipe.train, recipe.train.optimizer
        rows += [
            ("family", recipe.model.family),
            ("optimizer", f"{optimizer.name.value}, learning rate {optimizer.learning_rate:g}"),
            ("learning-rate schedule", recipe.train.lr_schedule.name.value),
            ("loss", train.loss.name.value),
            ("batch size", train.batch_size),
            ("epochs asked", train.epochs),
        ]
    rows += [
        ("parameters", info.parameters),
        ("epochs run", info.epochs_run),
        (
            "best epoch",
            None if best is None else f"{best.epoch} ({best.monitor} {format_cell(best.value)})",
        ),
        ("stopped by", info.stopped_by.value if info.stopped_by else None),
        ("status", info.status.value if info.status else None),
        ("training time", None if info.seconds is None else f"{info.seconds:,.1f} s"),
        ("device", info.device),
        ("seed", None if info.seed is None else str(info.seed)),  # an id, not a count
        ("deterministic", info.deterministic),
        ("resumed", len(info.resumed) or None),
        ("versions", ", ".join(f"{k} {v}" for k, v in info.versions.items()) or None),
    ]
    return ["## Model and training", "", *_facts(rows)]


def _metrics(sources: CardSources) -> list[str]:
    document = sources.document
    where = f"the {document.split} split" if document.split else "the given data"
    head = f"## Metrics on {where} ({document.num_examples:,} examples)"
    intro = (
        [
            f"Intervals: {document.bootstrap.confidence:.0%} bootstrap percentile intervals over "
            f"{document.bootstrap.resamples:,} resamples.",
            "",
        ]
        if document.bootstrap is not None
        else ["No intervals: evaluate with `--bootstrap 1000` to add them.", ""]
    )
    return [head, "", *intro, *metrics_section(document), *detail_section(document)]


def _baselines(sources: CardSources) -> list[str]:
    """How the model fares against each baseline on the task's deciding metric."""
    document = sources.document
    metric = DECIDING.get(document.task)
    if not document.baselines or metric is None:
        return []
    value = document.scores.metrics.get(metric)
    rows: list[list[Cell]] = []
    for name, metrics in document.baselines.items():
        base = metrics.get(metric)
        rows.append([WHAT.get(name, name), base, _verdict(metric, value, base)])
    lines = [
        "## Baselines",
        "",
        f"The deciding metric, {metric}: the model's is {format_cell(value)}.",
        "",
    ]
    lines += [*markdown_table(["baseline", metric, "the model"], rows), ""]
    return lines


def _verdict(metric: str, value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return "n/a"
    if value == base:
        return "ties"
    wins = value > base if better(metric) == Better.HIGHER else value < base
    return "beats it" if wins else "**loses to it**"


def _calibration(sources: CardSources) -> list[str]:
    calibration = sources.document.scores.calibration
    if calibration is None or not calibration.table:
        return []
    ece = sources.document.scores.metrics.get("expected_calibration_error")
    rows: list[list[Cell]] = [
        [
            f"{b.low:.2f} – {b.high:.2f}",
            b.count,
            b.confidence,
            b.accuracy,
            f"{b.confidence - b.accuracy:+.4f}",
        ]
        for b in calibration.table
    ]
    scaling = sources.document.calibration
    scaled = (
        [
            f"The probabilities are temperature-scaled (`train.calibration`): T = "
            f"{scaling.temperature:.4g}, fitted on the {scaling.fitted_on} split, is the model's "
            f"last layer. Without it the expected calibration error would be "
            f"{format_cell(scaling.ece_before)} and the log loss "
            f"{format_cell(scaling.log_loss_before)} (with it: {format_cell(scaling.ece_after)}, "
            f"{format_cell(scaling.log_loss_after)}).",
            "",
        ]
        if scaling is not None
        else []
    )
    return [
        "## Calibration",
        "",
        *scaled,
        f"Expected calibration error {format_cell(ece)} over {calibration.bins} bins of "
        "top-class confidence (a positive gap: overconfident).",
        "",
        *markdown_table(["bin", "examples", "confidence", "accuracy", "gap"], rows),
        "",
    ]


def _importance(sources: CardSources) -> list[str]:
    """Which input columns the model relies on (evaluate --importance), when measured."""
    lines = importance_section(sources.document)
    return ["## Which columns matter", "", *lines] if lines else []


def _weaknesses(sources: CardSources) -> list[str]:
    scores = sources.document.scores
    per_class = scores.per_class
    if not per_class:
        return []
    lines = ["## Where it is weakest", ""]
    for metric in ("recall", "f1"):
        weakest = sorted(per_class, key=lambda row: _get(row, metric))[:WEAKEST]
        lines += [f"Lowest {metric}:", ""]
        lines += [*_class_rows(weakest), ""]
    if scores.confusion_matrix is not None:
        lines += _confused(scores.confusion_matrix)
    return lines


def _get(row: ClassScores, metric: str) -> float:
    return row.recall if metric == "recall" else row.f1


def _class_rows(rows: list[ClassScores]) -> list[str]:
    return markdown_table(
        ["class", "precision", "recall", "f1", "support"],
        [[r.name, r.precision, r.recall, r.f1, r.support] for r in rows],
    )


def _confused(matrix: ConfusionMatrix) -> list[str]:
    """The most frequent mistakes: (true, predicted) pairs off the diagonal."""
    pairs = [
        (count, i, j)
        for i, row in enumerate(matrix.counts)
        for j, count in enumerate(row)
        if i != j and count > 0
    ]
    if not pairs:
        return ["No example was confused with another class.", ""]
    top = sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))[:CONFUSED_PAIRS]
    rows: list[list[Cell]] = [
        [matrix.labels[i], matrix.labels[j], count, f"{matrix.normalized[i][j]:.1%}"]
        for count, i, j in top
    ]
    header = ["true class", "predicted as", "examples", "share of the true class"]
    return ["Most confused pairs:", "", *markdown_table(header, rows), ""]


def _warnings(sources: CardSources) -> list[str]:
    """Every warning raised on the way: prepare's, training's, evaluate's own."""
    run_warnings = sources.info.warnings
    repeated = {TRAINING_PREFIX + w for w in run_warnings}
    evaluation = [w for w in sources.document.warnings if w not in repeated]
    groups = (
        ("prepare (profile.json)", sources.profile_warnings),
        ("train (run.json)", run_warnings),
        ("evaluate (metrics.json)", evaluation),
    )
    lines = ["## Warnings raised along the way", ""]
    if not any(found for _, found in groups):
        return [*lines, "None: prepare, train and evaluate raised no warning.", ""]
    for stage, found in groups:
        lines += [f"- **{stage}**: {'none' if not found else ''}".rstrip()]
        lines += [f"  - {w}" for w in found]
    return [*lines, ""]


def _footer(sources: CardSources) -> list[str]:
    document = sources.document
    plots = ", ".join(f"`{p}`" for p in document.plots)
    lines = ["---", ""]
    if plots:
        lines += [f"Plots in the run folder: {plots}.", ""]
    lines.append(
        f"Written by dltrain {__version__} (`dltrain evaluate --format model-card`) from the "
        f"run folder `{document.run}`: run.json, recipe.yaml, manifest.json, this evaluation's "
        f"metrics document and the prepared data's profile.json."
    )
    return lines
