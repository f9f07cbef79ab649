"""Profiling a table while it streams past: per-column statistics, inferred kinds, warnings.

A ``ColumnScan`` sees every batch of one column once and keeps a bounded summary (counts, sums,
extremes, up to ``DISTINCT_CAP`` distinct values), so profiling a 10M-row file costs no more
memory than a 10k-row one. ``Profile`` is the result: what `prepare` prints as a table and writes
as ``profile.json``, plus the warnings that ``--strict`` and the recipe's ``checks`` turn into
failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dltrain.data.hashing import dictionary_encoded
from dltrain.recipe.data import ChecksSpec, ColumnType

DISTINCT_CAP = 10_000  # distinct values tracked per column; beyond, "high cardinality" is enough
IMBALANCE_RATIO = 0.5  # smallest / largest class count below which the target is imbalanced
SAMPLE_VALUES = 2_000  # string values kept to tell text from categories and dates
_ID_NAME = re.compile(r"(^|[_\s.-])(id|no|nr|num|index|idx|key|uuid|guid)$|^(id|no|index)$", re.I)
_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d")


@dataclass
class ColumnScan:
    """Running statistics of one column over every row of the source."""

    name: str
    numeric: bool  # read as numbers (float64, NaN where missing)
    markers: list[str] = field(default_factory=list)
    rows: int = 0
    missing: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = np.inf
    maximum: float = -np.inf
    integral: bool = True
    counting_up: bool = True  # 0,1,2,… or 1,2,3,…: a row number
    last: float | None = None
    counts: dict[Any, int] | None = field(default_factory=dict)
    sample: list[str] = field(default_factory=list)
    first_batch_unique: bool = False

    def update(self, column: pa.Array | pa.ChunkedArray, values: np.ndarray | None = None) -> None:
        """Add one batch of this column (``values``: numbers already as float64, NaN missing)."""
        first = self.rows == 0
        self.rows += len(column)
        if self.numeric:
            if values is None:
                values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            self._update_numbers(column, values, first)
        else:
            self._update_strings(column, first)

    def _update_numbers(self, column: Any, values: np.ndarray, first: bool) -> None:
        present = values[~np.isnan(values)]
        self.missing += len(values) - len(present)
        if len(present):
            self.total += float(present.sum())
            self.total_sq += float(np.square(present).sum())
            self.minimum = min(self.minimum, float(present.min()))
            self.maximum = max(self.maximum, float(present.max()))
            if self.integral:
                self.integral = bool(np.all(np.floor(present) == present))
        if self.counting_up:
            steps_ok = len(present) == len(values) and bool(np.all(np.diff(values) == 1))
            joins = self.last is None or (len(values) > 0 and values[0] == self.last + 1)
            self.counting_up = steps_ok and joins
            if len(values):
                self.last = float(values[-1])
        if first or self.counts is not None:
            # numpy's sort-based unique is ~5x faster on floats than pyarrow's hash kernels
            uniques, counts = np.unique(present, return_counts=True)
            if first:
                self.first_batch_unique = len(uniques) == len(present) > 0
            if len(uniques) > DISTINCT_CAP:
                self.counts = None  # high cardinality: counting every value is not worth it
            elif self.counts is not None and len(present):
                self._merge(uniques.tolist(), counts.tolist())

    def _update_strings(self, column: Any, first: bool) -> None:
        # Everything is counted on the batch's distinct values: one dictionary encoding (shared
        # with row hashing when the caller passes it in) instead of a hash pass per statistic.
        encoded = dictionary_encoded(column)
        values = encoded.dictionary
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        counts = np.bincount(indices, minlength=len(values))
        markers = pa.array(self.markers, pa.string())
        is_marker = pc.is_in(values, value_set=markers).to_numpy(zero_copy_only=False)
        self.missing += int(counts[is_marker].sum())
        if first or len(self.sample) < SAMPLE_VALUES:
            rows = np.flatnonzero(~is_marker[indices])[: SAMPLE_VALUES - len(self.sample)]
            self.sample.extend(values.take(pa.array(indices[rows])).to_pylist())
            if first:
                present = counts[~is_marker]
                self.first_batch_unique = bool(present.sum() > 0 and present.max() == 1)
        if self.counts is not None:
            if len(values) > DISTINCT_CAP:
                self.counts = None
                return
            self._merge(values.to_pylist(), counts.tolist())

    def _merge(self, values: list[Any], counts: list[int]) -> None:
        assert self.counts is not None
        for value, count in zip(values, counts, strict=True):
            self.counts[value] = self.counts.get(value, 0) + count
        if len(self.counts) > DISTINCT_CAP:
            self.counts = None

    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def distinct(self) -> int | None:
        """Distinct non-missing values, or None when more than ``DISTINCT_CAP``."""
        if self.counts is None:
            return None
        return len([v for v in self.counts if self.numeric or v not in self.markers])

    def top(self, k: int = 3) -> list[tuple[str, int]]:
        if not self.counts:
            return []
        items = [(v, c) for v, c in self.counts.items() if self.numeric or v not in self.markers]
        items.sort(key=lambda item: (-item[1], str(item[0])))
        return [(_fmt_value(v), c) for v, c in items[:k]]

    def looks_like_dates(self) -> str | None:
        """The strptime format most sampled values parse with, if ≥ 95% do."""
        values = [v for v in self.sample if v]
        if len(values) < 3:
            return None
        array = pa.array(values, pa.string())
        try:
            parsed = pc.cast(array, pa.timestamp("s"))
            return "iso" if parsed.null_count == 0 else None
        except pa.ArrowInvalid:
            pass
        for fmt in DATE_FORMATS:
            try:
                pc.strptime(array, format=fmt, unit="s", error_is_null=False)
                return fmt
            except pa.ArrowInvalid:
                continue
        return None

    def text_like(self) -> bool:
        """Free text rather than categories: long values with several words, mostly distinct."""
        values = [v for v in self.sample if v]
        if not values:
            return False
        words = np.mean([len(v.split()) for v in values])
        distinct_share = len(set(values)) / len(values)
        return bool(words >= 4 and distinct_share > 0.5)

    def numeric_share(self) -> float:
        """Share of sampled non-missing string values that read as numbers."""
        values = [v for v in self.sample if v]
        if not values:
            return 0.0
        matches = pc.match_substring_regex(pa.array(values, pa.string()), _NUMBER_RE)
        return float(pc.sum(matches).as_py() or 0) / len(values)


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def identifier_like(scan: ColumnScan) -> bool:
    """A row number or a key: named like one and unique, or counting up 1, 2, 3, …."""
    if scan.present == 0:
        return False
    if scan.numeric and scan.counting_up and scan.rows > 2:
        return True
    unique = scan.distinct == scan.present if scan.distinct is not None else scan.first_batch_unique
    named = bool(_ID_NAME.search(scan.name))
    if scan.numeric:
        return named and unique and scan.integral
    return unique and scan.present > 20 and (named or not scan.text_like())


def infer_type(scan: ColumnScan, pinned: ColumnType) -> ColumnType:
    """The column's kind: the recipe's when pinned, else what its values look like."""
    if pinned != ColumnType.AUTO:
        return pinned
    if scan.present == 0:
        return ColumnType.IGNORE
    if not scan.numeric and scan.looks_like_dates():
        return ColumnType.DATETIME
    if identifier_like(scan):
        return ColumnType.IDENTIFIER
    if scan.numeric:
        return ColumnType.NUMERIC
    if scan.text_like():
        return ColumnType.TEXT
    return ColumnType.CATEGORICAL


@dataclass
class ColumnProfile:
    name: str
    type: str
    rows: int
    missing: int
    distinct: int | None
    minimum: float | None = None
    mean: float | None = None
    maximum: float | None = None
    std: float | None = None
    top: list[tuple[str, int]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    role: str = "feature"  # feature | target | ignored

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "rows": self.rows,
            "missing": self.missing,
            "missing_share": round(self.missing_share, 6),
            "distinct": self.distinct,
            "min": self.minimum,
            "mean": self.mean,
            "max": self.maximum,
            "std": self.std,
            "top": [{"value": v, "count": c} for v, c in self.top],
            "flags": self.flags,
        }


def column_profile(
    scan: ColumnScan, kind: ColumnType, role: str, max_categories: int
) -> ColumnProfile:
    """Summarise a finished scan, with its warning flags."""
    profile = ColumnProfile(
        name=scan.name,
        type=kind.value,
        rows=scan.rows,
        missing=scan.missing,
        distinct=scan.distinct,
        role=role,
    )
    if scan.numeric and scan.present:
        mean = scan.total / scan.present
        profile.minimum, profile.maximum = scan.minimum, scan.maximum
        profile.mean = mean
        profile.std = float(np.sqrt(max(scan.total_sq / scan.present - mean * mean, 0.0)))
    if not scan.numeric or (scan.distinct is not None and scan.distinct <= 20):
        profile.top = scan.top()
    flags = profile.flags
    if scan.present == 0:
        flags.append("all missing")
    elif scan.distinct == 1:
        flags.append("constant")
    if kind == ColumnType.IDENTIFIER or (role == "feature" and identifier_like(scan)):
        flags.append("identifier-like")
    if kind == ColumnType.CATEGORICAL and (scan.distinct is None or scan.distinct > max_categories):
        flags.append("high-cardinality")
    if profile.missing_share > 0.5 and scan.present:
        flags.append("mostly missing")
    return profile


@dataclass
class Profile:
    """What prepare found in the source: columns, rows, duplicates, target balance, leakage."""

    columns: list[ColumnProfile]
    rows: int
    duplicate_rows: int = 0
    dropped_rows: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, int] | None = None
    leaking_rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unit: str = "row"  # what an example is called in messages: row, image, text, …

    def warnings(self) -> list[str]:
        """Every finding a careful user should look at; --strict fails on any of them."""
        found = []
        for column in self.columns:
            useful = [
                f for f in column.flags if not (column.role != "feature" and f != "all missing")
            ]
            if column.role == "ignored" and "identifier-like" in column.flags:
                useful = []
            if useful:
                found.append(f"column {column.name!r}: {', '.join(useful)}")
        unit = self.unit
        if self.duplicate_rows:
            found.append(f"{self.duplicate_rows:,} duplicate {unit}(s)")
        for split, count in self.leaking_rows.items():
            if count:
                found.append(
                    f"{count:,} {split} {unit}(s) have the same features as a training {unit}"
                )
        if self.class_counts and len(self.class_counts) > 1:
            smallest, largest = min(self.class_counts.values()), max(self.class_counts.values())
            if largest and smallest / largest < IMBALANCE_RATIO:
                total = sum(self.class_counts.values())
                found.append(
                    f"imbalanced target: the smallest class is {smallest / total:.1%} of the "
                    f"{unit}s, the largest {largest / total:.1%} (class weights are stored)"
                )
        return found

    def smallest_class_share(self) -> float | None:
        if not self.class_counts:
            return None
        total = sum(self.class_counts.values())
        return min(self.class_counts.values()) / total if total else None

    def breaches(self, checks: ChecksSpec, *, strict: bool) -> list[str]:
        """The findings that fail prepare: explicit thresholds always, every warning if strict."""
        failed = []
        if checks.max_missing is not None:
            for column in self.columns:
                if column.role != "ignored" and column.missing_share > checks.max_missing:
                    failed.append(
                        f"column {column.name!r} is {column.missing_share:.1%} missing "
                        f"(checks.max_missing: {checks.max_missing:g})"
                    )
        if checks.max_duplicates is not None and self.rows:
            share = self.duplicate_rows / self.rows
            if share > checks.max_duplicates:
                failed.append(
                    f"{share:.1%} of the rows are duplicates "
                    f"(checks.max_duplicates: {checks.max_duplicates:g})"
                )
        smallest = self.smallest_class_share()
        if (
            checks.min_class_share is not None
            and smallest is not None
            and smallest < checks.min_class_share
        ):
            failed.append(
                f"the smallest class is {smallest:.1%} of the rows "
                f"(checks.min_class_share: {checks.min_class_share:g})"
            )
        if not checks.allow_leakage:
            for split, count in self.leaking_rows.items():
                if count:
                    failed.append(
                        f"{count:,} {split} row(s) repeat a training row "
                        f"(checks.allow_leakage: false)"
                    )
        if strict or checks.strict:
            failed.extend(w for w in self.warnings() if w not in failed)
        return failed

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "duplicate_rows": self.duplicate_rows,
            "dropped_rows": self.dropped_rows,
            "class_counts": self.class_counts,
            "leaking_rows": self.leaking_rows,
            "columns": [c.to_json() for c in self.columns],
            "warnings": self.warnings(),
            "notes": self.notes,
        }
