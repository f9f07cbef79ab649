"""A starter recipe for a dataset: what ``dltrain init`` infers, with the reasons it prints.

Reads the source once (tables: the profiling pass of prepare, nothing written) and proposes the
read options, the column kinds, the task, a model family that fits the data, and training and
evaluation defaults. Everything it decided goes into the recipe explicitly, so the user can read
and pin it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltrain.data.readers.formats import detect_format, resolve_source
from dltrain.errors import DataError
from dltrain.recipe.data import EMBEDDING_THRESHOLD, ColumnType, DataFormat, DataSpec
from dltrain.tasks import Task

if TYPE_CHECKING:  # read only at type-checking time: `dltrain init` on images never loads them
    from dltrain.data.preparation.table import TableInspection
    from dltrain.data.readers.csv_sniff import CsvOptions

LONG_TAIL_RATIO = 20.0  # max / mean above which a non-negative column gets a log scaling
IMBALANCED_SHARE = 0.2  # smallest class share below which class weights are proposed
MAX_IMAGE_SIDE = 128  # larger images are resized: CPU training at 224×224 is slow
# Above this share of rows repeating another exactly, repeats are taken for the data's nature
# (survey answers, coarse measurements: different people alike), not for copies made by
# accident; dropping them would reshape the data (randhie: 55% of its rows).
INHERENT_DUPLICATES = 0.05


@dataclass
class Starter:
    """The proposed recipe (as YAML-ready data), the reasons for each choice, the profile."""

    recipe: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    profile: dict[str, Any] | None = None


def starter_recipe(
    source: Path,
    target: str | None,
    *,
    recipe_dir: Path,
    task: Task | None = None,
    name: str | None = None,
) -> Starter:
    """Inspect ``source`` and propose a recipe for it.

    Args:
        source: the data (absolute, or relative to the working directory).
        target: the column to predict (tables); ignored for folders whose labels are built in.
        recipe_dir: where the recipe will be written; ``data.source`` is written relative to it.
        task: force the task (e.g. ``regression`` for a table with a date column).
        name: the recipe's name (default: from the source's name).

    Raises:
        DataError: the source cannot be read, or a table without ``target``.
    """
    path = resolve_source(source).resolve()
    fmt = detect_format(path)
    relative = os.path.relpath(path, recipe_dir.resolve())
    data: dict[str, Any] = {"source": relative, "format": fmt.value}
    stem = path.stem if path.is_file() else path.name
    recipe: dict[str, Any] = {
        "name": name or _slug(stem),
        "description": f"Starter recipe for {path.name}, written by dltrain init.",
        "seed": 42,
        "data": data,
    }
    reasons = [f"{path.name}: {fmt.value} data ({_format_reason(fmt)})"]
    starter = Starter(recipe=recipe, reasons=reasons)
    if fmt in (DataFormat.CSV, DataFormat.PARQUET):
        _table(starter, path, target, task)
    elif fmt == DataFormat.IMAGES:
        _images(starter, path)
    elif fmt == DataFormat.TEXT:
        from dltrain.data.readers.formats import class_folders

        layout = class_folders(path, frozenset({".txt"}), "text")
        recipe["model"] = {"family": "text", "encoder": "conv"}
        reasons.append("class folders of .txt files: a text classifier (conv encoder)")
        count = sum(len(files) for files in layout.splits["train"].values())
        recipe["train"] = training_defaults(reasons, count, 128, own_test="test" in layout.splits)
    else:
        _image_arrays(starter, path, fmt)
    recipe["evaluate"] = {"split": "test"}
    return starter


# A starter run aims at about this many optimizer steps (batches), whatever the data's size: the
# small MLPs and CNNs init proposes, with Adam at 1e-3, settle within a few thousand steps. So a
# 300-row table gets many short epochs and a 1M-row one a few long ones; early stopping ends the
# run once validation stops improving and keeps the best epoch's weights, so the generous budget
# of small data costs seconds, while the floor of epochs still lets early stopping see a trend.
TARGET_STEPS = 2_000
MIN_EPOCHS, MAX_EPOCHS = 10, 100
# Patience grows with the epochs (15% of them): many short epochs on small data are noisy, so
# stopping after 5 flat ones stops too early (the issue #13 symptom: the best epoch was the last).
PATIENCE_SHARE, MIN_PATIENCE, MAX_PATIENCE = 0.15, 5, 15
# Below this many rows a table trains in batches of 32: at 128 the step target is out of reach
# within MAX_EPOCHS (a 2,000-row table: 13 steps an epoch, 1,300 at most).
SMALL_TABLE_ROWS = 5_000
# The share of the examples that trains, after the default splits: 10% validation and 10% test,
# or 10% validation only when the source brings its own test set.
TRAIN_SHARE, TRAIN_SHARE_OWN_TEST = 0.8, 0.9


def training_defaults(
    reasons: list[str], examples: int, batch_size: int, *, own_test: bool = False
) -> dict[str, Any]:
    """The train section for ``examples`` (all of them: the splits are estimated), epochs and
    patience scaled to the dataset's size, and the reason appended to ``reasons``.

    Example:
        >>> small, large = training_defaults([], 300, 128), training_defaults([], 10**6, 256)
        >>> small["epochs"], small["early_stopping"]["patience"], large["epochs"]
        (100, 15, 10)
    """
    train = max(1, round(examples * (TRAIN_SHARE_OWN_TEST if own_test else TRAIN_SHARE)))
    steps = math.ceil(train / batch_size)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, round(TARGET_STEPS / steps)))
    patience = min(MAX_PATIENCE, max(MIN_PATIENCE, round(epochs * PATIENCE_SHARE)))
    reasons.append(
        f"training: about {train:,} training examples in batches of {batch_size} make "
        f"{steps:,} step(s) an epoch, so {epochs} epochs (aiming at ~{TARGET_STEPS:,} steps, "
        f"{MIN_EPOCHS}-{MAX_EPOCHS} epochs) and early stopping after {patience} epochs without "
        f"a better val_loss (the best epoch's weights are kept)"
    )
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "early_stopping": {"monitor": "val_loss", "patience": patience},
    }


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in text).strip("._-")
    return cleaned or "dataset"


def _format_reason(fmt: DataFormat) -> str:
    return {
        DataFormat.CSV: "delimited text",
        DataFormat.PARQUET: "Parquet file",
        DataFormat.IMAGES: "class folders of images",
        DataFormat.TEXT: "class folders of text files",
        DataFormat.IDX: "MNIST-style IDX files",
        DataFormat.NPZ: "numpy arrays",
    }.get(fmt, fmt.value)


def _table(starter: Starter, path: Path, target: str | None, task: Task | None) -> None:
    from dltrain.data.preparation.table import inspect_table

    data, reasons = starter.recipe["data"], starter.reasons
    if target is None:
        raise _missing_target_error(path)
    probe = task if task != Task.FORECASTING else None
    inspection = inspect_table(DataSpec(source=path, target=target, task=probe))
    csv = inspection.table.csv
    if csv is not None:
        options = _read_options(csv, reasons)
        if options:
            data["csv"] = options
    data["target"] = target
    dates = [n for n, k in inspection.kinds.items() if k == ColumnType.DATETIME]
    numeric_target = not inspection.task.is_classification
    forecasting = task == Task.FORECASTING or (task is None and numeric_target and len(dates) == 1)
    data["columns"] = _column_entries(inspection, forecasting, reasons)
    starter.profile = inspection.profile.to_json()
    if forecasting:
        _forecasting(starter, path, target, dates)
        return
    data["task"] = inspection.task.value
    reasons.append(_task_reason(inspection.task, target, inspection.classes))
    reasons.extend(inspection.notes[len(csv.notes) if csv else 0 :])
    kinds = inspection.kinds
    text = [n for n, k in kinds.items() if k == ColumnType.TEXT]
    unused = (ColumnType.IDENTIFIER, ColumnType.IGNORE, ColumnType.DATETIME)
    used = [n for n, k in kinds.items() if k not in unused]
    if text and used == text:
        starter.recipe["model"] = {"family": "text", "encoder": "conv"}
        reasons.append(f"{text[0]!r} is free text: a text model (conv encoder)")
    else:
        starter.recipe["model"] = {"family": "mlp", "units": [128, 64], "dropout": 0.1}
        reasons.append(
            "model: an MLP on the encoded row (numbers normalised, categories one-hot or embedded)"
        )
    _duplicates(starter, inspection)
    _table_training(starter, inspection)


def _duplicates(starter: Starter, inspection: TableInspection) -> None:
    """Keep repeated rows where they are too many to be accidental copies, and say why."""
    profile = inspection.profile
    share = profile.duplicate_rows / profile.rows if profile.rows else 0.0
    if share <= INHERENT_DUPLICATES:
        return
    starter.recipe["data"]["clean"] = {"duplicates": "keep"}
    starter.reasons.append(
        f"{profile.duplicate_rows:,} rows ({share:.0%}) repeat another exactly: too many for "
        f"accidental copies (different records alike), so they are kept "
        f"(data.clean.duplicates: drop removes them)"
    )


def _missing_target_error(path: Path) -> DataError:
    from dltrain.data.readers.tables import open_table
    from dltrain.recipe.data import CsvSpec

    names = open_table(path, DataFormat.AUTO, CsvSpec()).columns
    return DataError(
        f"dltrain init needs the column to predict for the table {path}: pass --target "
        f"COLUMN, one of: {', '.join(names)}."
    )


def _read_options(csv: CsvOptions, reasons: list[str]) -> dict[str, str | bool]:
    """The CSV read options that differ from the defaults, for ``data.csv`` (empty: none)."""
    options: dict[str, str | bool] = {}
    if csv.delimiter != ",":
        options["delimiter"] = csv.delimiter
    if not csv.header:
        options["header"] = False
    if not csv.quoting:
        options["quoting"] = False
    reasons.extend(f"read: {note}" for note in csv.notes)
    return options


def _column_entries(
    inspection: TableInspection, forecasting: bool, reasons: list[str]
) -> dict[str, dict[str, str]]:
    """Each column's kind, and log scaling for a long-tailed non-negative one (not for series)."""
    profile = {c.name: c for c in inspection.profile.columns}
    columns: dict[str, dict[str, str]] = {}
    for column, kind in inspection.kinds.items():
        entry = {"type": kind.value}
        info = profile[column]
        if (
            kind == ColumnType.NUMERIC
            and info.minimum is not None
            and info.minimum >= 0
            and (info.distinct is None or info.distinct > 2)  # an indicator has no tail
            and info.mean
            and info.maximum is not None
            and info.maximum / info.mean > LONG_TAIL_RATIO
            and not forecasting
        ):
            entry["scaling"] = "log"
            reasons.append(
                f"{column}: long-tailed (max {info.maximum:,.4g} vs mean {info.mean:,.4g}), "
                f"so log scaling"
            )
        if kind == ColumnType.CATEGORICAL and _wide(info.distinct):
            entry["encoding"] = "embedding"
            reasons.append(
                f"{column}: {_count(info.distinct)} distinct values, so an embedding rather than "
                f"a one-hot block as wide (encoding)"
            )
        columns[column] = entry
    return columns


def _wide(distinct: int | None) -> bool:
    """Whether prepare's `auto` would embed a category column with this many distinct values
    (None: more than the profile counts); the column keeps at most 100 (data.max_categories)
    plus its out-of-vocabulary and missing slots."""
    return distinct is None or distinct + 1 > EMBEDDING_THRESHOLD


def _count(distinct: int | None) -> str:
    return f"{distinct:,}" if distinct is not None else "over 10,000"


# Forecasting starters: steps of gradient descent to aim for (the windows of a short series
# fill an epoch in a few batches), within these bounds on epochs.
FORECAST_UPDATES = 3000
FORECAST_EPOCHS = (30, 200)
FORECAST_BATCH = 32


def _forecasting(starter: Starter, path: Path, target: str, dates: list[str]) -> None:
    """Turn the table's recipe into a forecaster's: windows over the date column, an LSTM that
    learns the change from each window's last value, training sized to the number of windows.

    Raises:
        DataError: the table has no date column.
    """
    from dltrain.data.preparation.series import time_steps
    from dltrain.data.preparation.series_time import seasonal_period

    data, reasons = starter.recipe["data"], starter.reasons
    if not dates:
        raise DataError(
            f"--task forecasting needs a column of dates or times in {path}; none was found. "
            f"Set `data.series.time_column` by hand, or pick another task."
        )
    series_spec = DataSpec.model_validate(
        {
            **{k: v for k, v in data.items() if k != "columns"},
            "source": path,
            "task": Task.FORECASTING,
            "series": {"time_column": dates[0]},
        }
    )
    times = time_steps(series_spec).sort_values()
    season, steps = seasonal_period(times), len(times)
    lookback = _forecast_lookback(season, steps)
    data["task"] = Task.FORECASTING.value
    data["series"] = {
        "time_column": dates[0],
        "lookback": lookback,
        "horizon": 1,
        "transform": "difference",
    }
    data.pop("columns")
    why = f"twice the season of {season} steps" if season else "no usual season"
    reasons.append(
        f"task forecasting: {dates[0]!r} holds dates and the target {target!r} is numeric; "
        f"windows of {lookback} steps ({why}) predict the next one (--task regression to "
        f"regress instead)"
    )
    starter.recipe["model"] = {"family": "rnn", "cell": "lstm", "units": [32]}
    windows = max(1, round(0.8 * steps) - lookback)
    per_epoch = -(-windows // FORECAST_BATCH)
    low, high = FORECAST_EPOCHS
    epochs = min(high, max(low, -(-FORECAST_UPDATES // per_epoch)))
    patience = min(20, max(5, epochs // 10))
    starter.recipe["train"] = {
        "epochs": epochs,
        "batch_size": FORECAST_BATCH,
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "early_stopping": {"monitor": "val_loss", "patience": patience},
    }
    reasons.append(
        f"model: an LSTM that learns the change from each window's last value "
        f"(data.series.transform: difference, the default; it starts as the naive forecast); "
        f"about {windows:,} training windows, so {epochs} epochs of batches of "
        f"{FORECAST_BATCH}, patience {patience}"
    )


def _forecast_lookback(season: int | None, steps: int) -> int:
    """Two seasons (one at least), else 30 steps; at most a quarter of the training steps."""
    wanted = 2 * season if season else 30
    longest = max(2, round(0.8 * steps) // 4)
    if season and season <= longest:
        return max(season, min(wanted, longest))
    return min(wanted, longest)


def table_batch_size(rows: int) -> int:
    """The starter batch for a table of ``rows``: small batches for small tables, where 128
    would leave too few steps (iris: one a epoch, 100 in all, against ~2,000 aimed at), larger
    ones for large tables, where more steps an epoch buy nothing but time."""
    if rows < SMALL_TABLE_ROWS:
        return 32
    return 256 if rows > 50_000 else 128


def _table_training(starter: Starter, inspection: TableInspection) -> None:
    """Training defaults for a table: batches by the table's size, balanced class weights for a
    rare class."""
    rows = inspection.profile.rows
    train = training_defaults(starter.reasons, rows, table_batch_size(rows))
    share = inspection.profile.smallest_class_share()
    if share is not None and share < IMBALANCED_SHARE and _trains_with_class_weights():
        train["class_weight"] = "balanced"
        starter.reasons.append(f"smallest class is {share:.1%} of the rows: balanced class weights")
    starter.recipe["train"] = train


def _trains_with_class_weights() -> bool:
    from dltrain.recipe.schema import TrainSpec

    return "class_weight" in TrainSpec.model_fields


def _task_reason(task: Task, target: str, classes: list[str] | None) -> str:
    if classes is not None:
        shown = ", ".join(classes[:6]) + ("…" if len(classes) > 6 else "")
        return f"task {task.value}: the target {target!r} has {len(classes)} classes ({shown})"
    return f"task {task.value}: the target {target!r} holds many different numbers"


def _images(starter: Starter, path: Path) -> None:
    from PIL import Image

    from dltrain.data.readers.formats import IMAGE_SUFFIXES, class_folders

    layout = class_folders(path, IMAGE_SUFFIXES, "image")
    first = layout.splits["train"][layout.classes[0]][0]
    with Image.open(first) as image:
        width, height = image.size
        grey = image.mode in ("1", "L", "I;16", "I", "F")
    side = min(max(height, width), MAX_IMAGE_SIDE)
    starter.recipe["data"]["image"] = {"size": [side, side], "channels": 1 if grey else 3}
    count = sum(len(v) for v in layout.splits["train"].values())
    has_test = "test" in layout.splits
    starter.reasons.append(
        f"{len(layout.classes)} classes ({', '.join(layout.classes[:6])}"
        f"{'…' if len(layout.classes) > 6 else ''}), {count:,} training images"
        f"{' and a test/ folder kept as the test split' if has_test else ''}"
    )
    starter.reasons.append(
        f"images are {width}×{height}: resized to {side}×{side}, {'greyscale' if grey else 'RGB'}"
    )
    starter.recipe["model"] = {
        "family": "cnn",
        "filters": [32, 64, 128],
        "batch_norm": True,
        "global_pooling": True,
        "dense": [128],
        "dropout": 0.3,
    }
    starter.reasons.append("model: a CNN with batch norm and global pooling")
    starter.reasons.append(NO_AUGMENTATION)
    starter.recipe["train"] = training_defaults(starter.reasons, count, 32, own_test=has_test)


# Flips and rotations are not neutral: a flipped digit or letter is another symbol or none (on
# handwritten digits the old default horizontal flip cost 4.4 points of accuracy). init cannot
# tell photographs from symbols honestly from a few files, so it adds none and says how to.
NO_AUGMENTATION = (
    "no augmentation: flips and rotations change what digits, letters or charts mean; for "
    "photographs of objects add e.g. model.augmentation: {flip: horizontal, rotation: 0.05, "
    "zoom: 0.1}"
)


def _image_arrays(starter: Starter, path: Path, fmt: DataFormat) -> None:
    """A small CNN for IDX or .npz image arrays, the pixel range prepare will scale from, and
    training scaled to the number of examples."""
    from dltrain.data.pixels import infer_pixel_range
    from dltrain.data.readers.formats import read_source

    source = read_source(path, fmt)
    train_x = source.splits["train"][0]
    starter.recipe["model"] = {
        "family": "cnn",
        "filters": [32, 64],
        "batch_norm": True,
        "dense": [128],
    }
    starter.reasons.append("image arrays: a small CNN with batch norm")
    starter.reasons.append(NO_AUGMENTATION)
    found = infer_pixel_range(train_x)
    starter.reasons.append(
        f"pixels: {found.reason}: prepare scales {found.describe()} onto 0 to 1 "
        f"(data.pixel_range: [low, high] to override)"
    )
    starter.recipe["train"] = training_defaults(
        starter.reasons, len(train_x), 128, own_test=source.has_test
    )
