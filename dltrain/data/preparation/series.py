"""Time series: a table with a time column → windows of ``lookback`` steps that predict the
``horizon`` steps after them, split in time order.

The rows are sorted by time; a regular series (daily, hourly, monthly…) with missing steps gets
them back (Melbourne's temperatures lack two New Year's Eves) and every gap is filled as
``series.missing`` says. The first rows are training, the next validation, the last test. A
window belongs to the split its targets fall in, and may look back into the split before it,
which is what a forecaster deployed at that time would have seen; targets never cross splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dltrain.data.preparation import Prepared
from dltrain.data.preparation.forecast_base import check_transform, fit_transform
from dltrain.data.preparation.series_time import (
    calendar_features,
    find_time_column,
    parse_times,
    regularise,
    seasonal_period,
)
from dltrain.data.preparation.table.reading import open_table_source, stripped_batches
from dltrain.data.profile import ColumnProfile, ColumnScan, Profile, column_profile, infer_type
from dltrain.data.splits import SPLIT_NAMES
from dltrain.data.store import ShardLayout, ShardWriter
from dltrain.errors import DataError
from dltrain.manifest import (
    Cleaning,
    DatasetDescription,
    FilledColumn,
    NumericTarget,
    SequenceFeatures,
    SequencePreprocessing,
    SeriesLayout,
    Split,
)
from dltrain.recipe.data import (
    ColumnSpec,
    ColumnType,
    DataSpec,
    SeriesSpec,
)
from dltrain.tasks import Task

_REACH = " (the lookback may reach into the split before, the horizon may not)"


def prepare_series(spec: DataSpec, seed: int, folder: Path) -> Prepared:
    """Read, order, fill, split and window a time series; fit its scaling on training rows.

    Args:
        spec: the recipe's data section (with its ``series``).
        seed: unused: the splits of a series are in time order.
        folder: the (temporary) dataset folder the shards go to.

    Returns:
        The dataset's description and profile.

    Raises:
        DataError: no time column, unparsable or repeated times, non-numeric targets, or a
            lookback and horizon longer than a split.
    """
    series = spec.series
    assert series is not None
    if spec.test_source is not None:
        raise DataError(
            "`data.test_source` does not apply to time series: the test split is the last "
            f"{spec.split.test:.0%} of the series, in time order. Remove it, or put the test "
            f"period at the end of {spec.source}."
        )
    columns = _read_columns(spec, series)
    _check_targets(columns, spec)
    features = _window_features(columns, series, spec.targets)
    frame = pd.DataFrame(
        {n: pa.chunked_array(columns.parts[n]).to_numpy().astype(np.float64) for n in features},
        index=pd.DatetimeIndex(columns.times, name=columns.time_column),
    )
    frame, notes, filled = regularise(frame, series, spec.source)
    ignored = [n for n in columns.names if n != columns.time_column and n not in features]
    if ignored:
        notes.append(f"not used as window features: {', '.join(ignored)}")
    if series.calendar:
        calendar = _calendar_columns(frame, columns.names, series, spec.source)
        frame = frame.assign(**calendar)
        features = features + list(calendar)
        notes.append(f"calendar features: {', '.join(calendar)}")
    season = series.season or seasonal_period(frame.index)
    if season is not None and not series.season:
        notes.append(f"season: {season} steps (from the time step; series.season to change)")
    check_transform(series.transform, series.lookback, season, spec.source)
    windows = _write_windows(frame, features, spec, folder)
    profile = Profile(
        columns=_column_profiles(columns, features, spec), rows=columns.rows, notes=notes
    )
    description = _describe_series(spec, columns.time_column, windows, notes, filled, season)
    return Prepared(description=description, profile=profile)


def time_steps(spec: DataSpec) -> pd.DatetimeIndex:
    """The series' times as read (unsorted, before gaps are put back), for ``dltrain init``."""
    assert spec.series is not None
    return _read_columns(spec, spec.series).times


@dataclass
class _SeriesColumns:
    """The table read whole: each column's scan, values and kind, and its times."""

    names: list[str]
    scans: dict[str, ColumnScan]
    parts: dict[str, list[Any]]  # per column, its Arrow chunks
    kinds: dict[str, ColumnType]
    rows: int
    time_column: str
    times: pd.DatetimeIndex


def _read_columns(spec: DataSpec, series: SeriesSpec) -> _SeriesColumns:
    """Read every column whole, profile it, and find and parse the time column.

    Raises:
        DataError: no data rows, no (or several) time columns, times that do not parse or
            repeat.
    """
    source = open_table_source(spec)
    table, types, markers = source.main, source.types, source.markers
    scans = {
        n: ColumnScan(n, numeric=types[n] == pa.float64(), markers=markers) for n in table.columns
    }
    parts: dict[str, list[Any]] = {n: [] for n in table.columns}
    for _, columns in stripped_batches(source):
        for name, column in columns.items():
            scans[name].update(column)
            parts[name].append(column)
    rows = scans[table.columns[0]].rows
    if rows == 0:
        raise DataError(f"{spec.source} has a header but no data rows.")
    time_column = find_time_column(series, scans, table.columns, spec.source)
    times = parse_times(pa.chunked_array(parts[time_column]), time_column, spec.source)
    kinds = {n: infer_type(scans[n], spec.columns.get(n, ColumnSpec()).type) for n in table.columns}
    return _SeriesColumns(table.columns, scans, parts, kinds, rows, time_column, times)


def _check_targets(columns: _SeriesColumns, spec: DataSpec) -> None:
    """Forecast targets must be numbers, present somewhere.

    Raises:
        DataError: a target holds text, or is missing in every row.
    """
    scans = columns.scans
    for name in spec.targets:
        if not scans[name].numeric:
            raise DataError(
                f"The forecasting target {name!r} of {spec.source} is not numeric (e.g. "
                f"{scans[name].sample[:1]}). Forecasts predict numbers; pick numeric column(s)."
            )
        if scans[name].present == 0:
            raise DataError(
                f"The target column {name!r} of {spec.source} is missing in every row. Expected "
                f"values to learn from; check `data.target` and `data.csv.missing_values`."
            )


def _window_features(columns: _SeriesColumns, series: SeriesSpec, targets: list[str]) -> list[str]:
    """The columns each window holds: the recipe's, else every numeric one; targets always.

    Raises:
        DataError: the recipe names a column that is not numeric.
    """
    scans = columns.scans
    features = series.features or [
        n
        for n in columns.names
        if n != columns.time_column and scans[n].numeric and columns.kinds[n] == ColumnType.NUMERIC
    ]
    for name in targets:
        if name not in features:
            features.append(name)
    for name in features:
        if not scans[name].numeric:
            raise DataError(
                f"`data.series.features` names {name!r}, which is not numeric. Window features "
                f"must be numbers; drop it from the list."
            )
    return features


def _calendar_columns(
    frame: pd.DataFrame, names: list[str], series: SeriesSpec, source: Path
) -> dict[str, np.ndarray]:
    """The calendar cycles' sine and cosine columns for the steps of ``frame``.

    Raises:
        DataError: a calendar column would take the name of a source column.
    """
    calendar = calendar_features(frame.index, series.calendar)
    clashes = [n for n in calendar if n in frame.columns or n in names]
    if clashes:
        raise DataError(
            f"`data.series.calendar` adds the column(s) {', '.join(clashes)}, but "
            f"{source} already has a column of that name. Rename the source column, or "
            f"drop the cycle from `data.series.calendar`."
        )
    return calendar


@dataclass
class _Windows:
    """The filled series as arrays, its splits' bounds and the windows written."""

    frame: pd.DataFrame
    features: list[str]
    values: np.ndarray  # (steps, features) float32
    targets: np.ndarray  # (steps, targets) float32
    bounds: list[int]  # first step of train, validation, test, and the end
    splits: dict[str, Split]  # as stored
    counts: dict[str, int]  # windows per split
    train: tuple[np.ndarray, np.ndarray]  # the training windows and their targets


def _write_windows(
    frame: pd.DataFrame, features: list[str], spec: DataSpec, folder: Path
) -> _Windows:
    """Split the steps in time order and store each split's windows.

    Raises:
        DataError: a split too short for one window.
    """
    series = spec.series
    assert series is not None
    values = frame[features].to_numpy(np.float32)
    target_values = frame[spec.targets].to_numpy(np.float32)
    num = len(frame)
    num_test = max(1, round(spec.split.test * num))
    num_validation = max(1, round(spec.split.validation * num))
    bounds = [0, num - num_validation - num_test, num - num_test, num]
    writer = ShardWriter(
        folder, layout=ShardLayout.NPZ, num_classes=None, rows_per_shard=spec.shard_rows
    )
    window_counts = {}
    for i, name in enumerate(SPLIT_NAMES):
        x, y = _windows(values, target_values, bounds[i], bounds[i + 1], series)
        if len(x) == 0:
            steps = bounds[i + 1] - bounds[i]
            raise DataError(
                f"The {name} split of {spec.source} has {steps:,} time steps (of {num:,}), too "
                f"few for one window: lookback {series.lookback} + horizon {series.horizon} "
                f"steps{_REACH if i else ''}. "
                f"Shorten `data.series.lookback`/`horizon`, or give validation and test larger "
                f"shares (`data.split`)."
            )
        writer.write(name, x, y)
        window_counts[name] = len(x)
        if name == "train":
            train = (x, y)
    stored = writer.close()
    return _Windows(frame, features, values, target_values, bounds, stored, window_counts, train)


def _column_profiles(
    columns: _SeriesColumns, features: list[str], spec: DataSpec
) -> list[ColumnProfile]:
    """Each source column's profile, its role the target, the time, a feature or ignored."""
    profiles = []
    for n in columns.names:
        kind = ColumnType.DATETIME if n == columns.time_column else columns.kinds[n]
        role = (
            "target"
            if n in spec.targets
            else "time"
            if n == columns.time_column
            else ("feature" if n in features else "ignored")
        )
        profiles.append(column_profile(columns.scans[n], kind, role, spec.max_categories))
    return profiles


def _describe_series(
    spec: DataSpec,
    time_column: str,
    windows: _Windows,
    notes: list[str],
    filled: list[FilledColumn],
    season: int | None,
) -> DatasetDescription:
    """The description of a prepared series; statistics of the training steps only."""
    series = spec.series
    assert series is not None
    bounds, frame = windows.bounds, windows.frame
    train = windows.values[: bounds[1]]
    train_targets = windows.targets[: bounds[1]]
    variance = train.var(axis=0, dtype=np.float64)
    return DatasetDescription(
        task=Task.FORECASTING,
        features=SequenceFeatures(
            shape=[series.lookback, len(windows.features)],
            columns=windows.features,
            time_column=time_column,
            frequency=notes[0] if notes else None,
        ),
        target=NumericTarget(
            columns=spec.targets,
            horizon=series.horizon,
            lookback=series.lookback,
            mean=train_targets.mean(axis=0, dtype=np.float64).tolist(),
            std=[float(s) or 1.0 for s in train_targets.std(axis=0, dtype=np.float64)],
            min=train_targets.min(axis=0).astype(np.float64).tolist(),
            max=train_targets.max(axis=0).astype(np.float64).tolist(),
        ),
        preprocessing=SequencePreprocessing(
            mean=train.mean(axis=0, dtype=np.float64).tolist(),
            variance=[float(v) if v > 1e-24 else 1.0 for v in variance],
        ),
        splits=windows.splits,
        source_splits=["train"],
        series=SeriesLayout(
            steps=len(frame),
            split_steps={n: bounds[i + 1] - bounds[i] for i, n in enumerate(SPLIT_NAMES)},
            windows=windows.counts,
            start=str(frame.index[0]),
            end=str(frame.index[-1]),
            season=season,
            **fit_transform(
                series.transform,
                windows.targets[: bounds[1]],
                windows.train,
                [windows.features.index(t) for t in spec.targets],
                season,
            ),
        ),
        cleaning=Cleaning(filled=filled, notes=notes, duplicates="n/a"),
    )


def _windows(
    values: np.ndarray, targets: np.ndarray, start: int, end: int, series: SeriesSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose targets lie in rows [start, end); inputs may start before ``start``."""
    lookback, horizon = series.lookback, series.horizon
    first = max(start, lookback)
    positions = np.arange(first, end - horizon + 1, series.stride)
    if len(positions) == 0:
        return (
            np.zeros((0, lookback, values.shape[1]), np.float32),
            np.zeros((0, horizon, targets.shape[1]), np.float32),
        )
    x_view = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # (n-L+1, F, L)
    y_view = np.lib.stride_tricks.sliding_window_view(targets, horizon, axis=0)  # (n-H+1, k, H)
    x = np.ascontiguousarray(x_view[positions - lookback].transpose(0, 2, 1))
    y = np.ascontiguousarray(y_view[positions].transpose(0, 2, 1))
    return x.astype(np.float32), y.astype(np.float32)
