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
    CalendarFeature,
    ColumnSpec,
    ColumnType,
    DataSpec,
    Missing,
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
    frame, notes, filled = _regularise(frame, series, spec.source)
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
    time_column = _time_column(series, scans, table.columns, spec.source)
    times = _parse_times(pa.chunked_array(parts[time_column]), time_column, spec.source)
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
    writer = ShardWriter(folder, layout=ShardLayout.NPZ, num_classes=None)
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


# The usual season of a series by its time step: (shortest step, longest step, steps a season).
# Ranges, not exact steps, so that months (28-31 days) and quarters (89-92 days) match.
_SEASONS = (
    (pd.Timedelta(hours=1), pd.Timedelta(hours=1), 24),
    (pd.Timedelta(days=1), pd.Timedelta(days=1), 7),
    (pd.Timedelta(days=7), pd.Timedelta(days=7), 52),
    (pd.Timedelta(days=28), pd.Timedelta(days=31), 12),
    (pd.Timedelta(days=89), pd.Timedelta(days=92), 4),
)


def seasonal_period(index: pd.DatetimeIndex) -> int | None:
    """Steps in one season, from the series' typical time step; None when no usual season fits.

    Example: a weekly index gives 52, a monthly one 12, a yearly one None.
    """
    if len(index) < 3:
        return None
    step = pd.Timedelta(np.median(np.diff(index.values)))
    for shortest, longest, steps in _SEASONS:
        if shortest <= step <= longest:
            return steps
    return None


# Seconds in one turn of each cycle; a year is 365.25 days so that leap years do not drift.
_PERIODS = {
    CalendarFeature.DAY_OF_YEAR: 365.25 * 86400.0,
    CalendarFeature.DAY_OF_WEEK: 7 * 86400.0,
    CalendarFeature.TIME_OF_DAY: 86400.0,
}


def calendar_features(
    times: pd.DatetimeIndex, cycles: list[CalendarFeature]
) -> dict[str, np.ndarray]:
    """The sine and cosine of each time's position in each calendar cycle.

    Sine and cosine rather than the raw day number: 31 December and 1 January are neighbours.

    Args:
        times: the series' time steps.
        cycles: which cycles to encode.

    Returns:
        ``{"<cycle>_sin": values, "<cycle>_cos": values}`` in the order asked, float64 arrays.

    Example:
        ``calendar_features(index, [CalendarFeature.DAY_OF_YEAR])["day_of_year_cos"]`` is 1 on
        1 January and about -1 in early July.
    """
    seconds = {
        # Seconds since the cycle began: 1 January 00:00, Monday 00:00, midnight.
        CalendarFeature.DAY_OF_YEAR: (times.day_of_year.to_numpy() - 1) * 86400.0
        + _seconds_of_day(times),
        CalendarFeature.DAY_OF_WEEK: times.day_of_week.to_numpy() * 86400.0
        + _seconds_of_day(times),
        CalendarFeature.TIME_OF_DAY: _seconds_of_day(times),
    }
    columns: dict[str, np.ndarray] = {}
    for cycle in cycles:
        angle = 2.0 * np.pi * seconds[cycle] / _PERIODS[cycle]
        columns[f"{cycle.value}_sin"] = np.sin(angle)
        columns[f"{cycle.value}_cos"] = np.cos(angle)
    return columns


def _seconds_of_day(times: pd.DatetimeIndex) -> np.ndarray:
    return (times.hour * 3600 + times.minute * 60 + times.second).to_numpy(np.float64)


def _time_column(
    series: SeriesSpec, scans: dict[str, ColumnScan], columns: list[str], source: Path
) -> str:
    if series.time_column is not None:
        return series.time_column
    candidates = [n for n in columns if not scans[n].numeric and scans[n].looks_like_dates()]
    if len(candidates) == 1:
        return candidates[0]
    found = "none looks like dates" if not candidates else "several do: " + ", ".join(candidates)
    raise DataError(
        f"Cannot tell which column of {source} holds the time "
        f"({found}). "
        f"Set `data.series.time_column` to one of: {', '.join(columns)}."
    )


def _parse_times(column: pa.ChunkedArray, name: str, source: Path) -> pd.DatetimeIndex:
    values = pd.Series(column.to_pylist(), dtype=object)
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        shown = ", ".join(f"row {i + 1}: {values[i]!r}" for i in bad[:5])
        raise DataError(
            f"{len(bad):,} value(s) of the time column {name!r} in {source} are not dates or "
            f"times ({shown}). Fix or remove those rows, or set `data.series.time_column`."
        )
    index = pd.DatetimeIndex(parsed)
    repeated = index[index.duplicated()]
    if len(repeated):
        raise DataError(
            f"{len(repeated):,} time(s) appear more than once in {name!r} of {source} (first: "
            f"{repeated[0]}). Expected one row per time step; aggregate the duplicates first."
        )
    return index


def _regularise(
    frame: pd.DataFrame, series: SeriesSpec, source: Path
) -> tuple[pd.DataFrame, list[str], list[FilledColumn]]:
    """Sort by time, put back the missing steps of a regular series, fill the gaps."""
    frame = frame.sort_index()
    notes: list[str] = []
    frequency = pd.infer_freq(frame.index) if len(frame) >= 3 else None
    if frequency is not None:
        notes.append(f"regular series, frequency {frequency}")
    elif len(frame) >= 3:
        steps = np.diff(frame.index.values)  # timedelta64, whatever the index's unit
        values, counts = np.unique(steps, return_counts=True)
        step = pd.Timedelta(values[np.argmax(counts)])
        if counts.max() >= 0.9 * len(steps):
            full = pd.date_range(frame.index[0], frame.index[-1], freq=step)
            missing_steps = len(full) - len(frame)
            if series.fill_gaps and frame.index.isin(full).all() and missing_steps <= len(frame):
                frame = frame.reindex(full)
                frame.index.name = full.name
                notes.append(
                    f"regular series, one row every {step}; {missing_steps:,} missing step(s) "
                    f"put back"
                )
            else:
                notes.append(f"mostly regular series, one row every {step}")
        else:
            notes.append("irregular time steps: windows count rows, not time")
    missing = frame.isna().sum()
    filled = [
        FilledColumn(
            column=str(n),
            missing=int(c),
            missing_in_train=int(c),
            strategy=series.missing,
            fill="",
            where="prepare",
        )
        for n, c in missing.items()
        if c
    ]
    if series.missing == Missing.DROP_ROW:
        frame = frame.dropna()
    elif series.missing == Missing.FFILL:
        frame = frame.ffill().bfill()
    elif series.missing == Missing.BFILL:
        frame = frame.bfill().ffill()
    else:
        frame = frame.interpolate(method="linear", limit_direction="both")
    if frame.isna().any().any():
        empty = [n for n in frame.columns if frame[n].isna().all()]
        raise DataError(
            f"Column(s) {', '.join(empty)} of {source} have no values to fill gaps from. Drop "
            f"them from `data.series.features`."
        )
    return frame, notes, filled


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
