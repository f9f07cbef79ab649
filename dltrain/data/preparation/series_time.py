"""The time axis of a series: its time column parsed, its steps made regular and its gaps
filled, its usual season, and the calendar cycles a window may carry as features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dltrain.data.profile import ColumnScan
from dltrain.errors import DataError
from dltrain.manifest import FilledColumn
from dltrain.recipe.data import CalendarFeature, Missing, SeriesSpec

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


def find_time_column(
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


def parse_times(column: pa.ChunkedArray, name: str, source: Path) -> pd.DatetimeIndex:
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


def regularise(
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
