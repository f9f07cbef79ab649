"""Pass 2: replay pass 1's batches, drop what cleaning drops, write each split's shards (on a
writer thread) and fit the preprocessing on the training rows only.

What is stored are the source's own values (numbers as float32 with NaN for missing, everything
else as text): imputation, clipping, scaling and vocabularies are applied by the model's first
layers (models/io.py), so the saved model takes raw rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dltrain.data.derived import check_derived, derive_numpy
from dltrain.data.prefetch import prefetched
from dltrain.data.preparation.table.plan import UNUSED, TablePlan
from dltrain.data.preparation.table.reading import TableSource
from dltrain.data.preparation.table.report import describe_cleaning, describe_target
from dltrain.data.preparation.table.scan import TableScan
from dltrain.data.preparation.table.spill import Spill
from dltrain.data.splits import SPLIT_NAMES, TRAIN
from dltrain.data.store import ShardLayout, ShardWriter
from dltrain.data.transforms import CategoryFit, NumericFit, encode_category
from dltrain.errors import DataError
from dltrain.input_names import keras_input_names
from dltrain.manifest import (
    CategoricalColumn,
    DatasetDescription,
    NumericColumn,
    Split,
    TableColumn,
    TableFeatures,
    TablePreprocessing,
    TextFeatures,
    TextPreprocessing,
)
from dltrain.recipe.data import ColumnSpec, ColumnType, DataSpec, Missing
from dltrain.tasks import Task

_Strategy = tuple[Missing, float | str | None]  # how missing values are handled, and the constant


@dataclass(frozen=True)
class ColumnRoles:
    """The columns the shards store, the features among them by kind, and how each feature's
    missing values are handled."""

    stored: list[str]
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    strategies: dict[str, _Strategy]  # per numeric and categorical feature
    drop_row: list[str]  # features whose missing values drop the row


def write_table(
    table: TableSource, scan: TableScan, plan: TablePlan, seed: int, spill: Spill, folder: Path
) -> DatasetDescription:
    """Store each split's rows as shards and fit the preprocessing on the training rows.

    Args:
        table: the opened files.
        scan: pass 1's findings.
        plan: the kinds, targets, kept rows and splits decided after pass 1.
        seed: seeds the numeric fits' samples.
        spill: pass 1's batches, replayed here.
        folder: the (temporary) dataset folder the shards go to.

    Returns:
        The dataset's description: task, splits, source splits, target, features,
        preprocessing and cleaning.

    Raises:
        DataError: a cleaning setting that does not apply to a column, or a split left empty.
    """
    roles = _column_roles(table, plan)
    fits = _Fits(table, roles, plan.text_kind, seed)
    splits = _write_shards(table, plan, roles, fits, spill, folder)
    _check_no_split_empty(splits, table.spec, plan)
    return _describe_table(table, scan, plan, fits, splits)


def _column_roles(table: TableSource, plan: TablePlan) -> ColumnRoles:
    """Which columns are stored, which are features, and how their missing values are filled.

    Raises:
        DataError: a missing-value strategy that does not apply, or derived columns of texts.
    """
    main, spec = table.main, table.spec
    targets = spec.targets
    stored = [n for n in main.columns if n not in targets]
    if plan.text_kind is not None:
        stored = [plan.text_kind]
    features = [n for n in stored if plan.kinds[n] not in UNUSED]
    numeric = [n for n in features if plan.kinds[n] == ColumnType.NUMERIC]
    categorical = [n for n in features if plan.kinds[n] == ColumnType.CATEGORICAL]
    strategies = {n: _strategy(spec, n, plan.kinds[n]) for n in numeric + categorical}
    drop_row = [n for n in numeric + categorical if strategies[n][0] == Missing.DROP_ROW]
    if spec.derived and plan.text_kind is not None:
        raise DataError(
            f"`data.derived` computes numeric columns of a table, but {spec.source} is read as "
            f"texts (column {plan.text_kind!r}). Remove `data.derived`."
        )
    check_derived(spec.derived, main.columns, numeric, targets)
    _check_encodings(spec, {n: plan.kinds[n] for n in features})
    return ColumnRoles(stored, features, numeric, categorical, strategies, drop_row)


class _Fits:
    """The preprocessing fitted on the training rows, a batch at a time."""

    def __init__(
        self, table: TableSource, roles: ColumnRoles, text_kind: str | None, seed: int
    ) -> None:
        self.spec = table.spec
        self.roles = roles
        self.text_kind = text_kind
        derived = list(self.spec.derived)
        self.numeric = {n: NumericFit(n, seed + i) for i, n in enumerate(roles.numeric + derived)}
        self.categories = {n: CategoryFit(n, table.markers) for n in roles.categorical}
        self.texts: list[str] = []

    def update(self, columns: dict[str, pa.Array], train: np.ndarray) -> None:
        """Fit on the rows of one batch that ``train`` selects."""
        train_mask = pa.array(train)
        train_numbers: dict[str, np.ndarray] = {}
        for name in self.roles.numeric:
            numbers = columns[name].to_numpy(zero_copy_only=False)
            train_numbers[name] = numbers.astype(np.float64, copy=False)[train]
            self.numeric[name].update(train_numbers[name])
        for name, expression in self.spec.derived.items():
            self.numeric[name].update(derive_numpy(expression, train_numbers))
        for name, category in self.categories.items():
            counts = pc.value_counts(pc.filter(columns[name], train_mask))
            values = counts.field("values").to_pylist()
            category.update(values, counts.field("counts").to_pylist())
        if self.text_kind is not None:
            self.texts.extend(pc.filter(columns[self.text_kind], train_mask).to_pylist())

    def finish_numeric(self) -> list[NumericColumn]:
        """The manifest's numeric preprocessing: source columns, then derived ones.

        Raises:
            DataError: a derived column asked to drop rows.
        """
        spec = self.spec
        entries = []
        for name in self.roles.numeric + list(spec.derived):
            column_spec = spec.columns.get(name, ColumnSpec())
            strategies = self.roles.strategies
            strategy, constant = (
                strategies[name] if name in strategies else _derived_strategy(spec, name)
            )
            entry = self.numeric[name].finish(
                strategy,
                constant,
                column_spec.outliers or spec.clean.outliers,
                spec.clean,
                column_spec.scaling or spec.numeric_scaling,
            )
            if name in spec.derived:
                # The model recomputes the column from its raw inputs with this expression.
                entry = entry.model_copy(update={"expression": spec.derived[name]})
            entries.append(entry)
        return entries

    def finish_categorical(self) -> list[CategoricalColumn]:
        """The manifest's categorical preprocessing, one entry per column."""
        spec = self.spec
        strategies, most = self.roles.strategies, spec.max_categories
        entries = []
        for name in self.roles.categorical:
            column = spec.columns.get(name, ColumnSpec())
            entry = self.categories[name].finish(*strategies[name], most)
            encoding = column.encoding or spec.categorical_encoding
            entries.append(encode_category(entry, encoding, column.embedding_dim))
        return entries


def _write_shards(
    table: TableSource,
    plan: TablePlan,
    roles: ColumnRoles,
    fits: _Fits,
    spill: Spill,
    folder: Path,
) -> dict[str, Split]:
    """Replay the spilled batches into each split's shards, fitting on the training rows.

    Returns:
        The splits as stored.
    """
    writer = ShardWriter(
        folder,
        layout=ShardLayout.ARROW,
        num_classes=len(plan.classes) if plan.classes else None,
        background=True,
        rows_per_shard=table.spec.shard_rows,
    )
    try:  # the background writer must finish before the build folder can go
        dropped_missing = 0
        offset = 0
        marker_set = pa.array(table.markers, pa.string())
        for columns, stored in prefetched(
            _stored_tables(spill, roles.stored, table.types), depth=1
        ):
            rows = len(next(iter(columns.values())))
            split = plan.splits[offset : offset + rows].copy()
            y = plan.y[offset : offset + rows]
            offset += rows
            dropped_missing += _drop_missing(columns, split, roles.drop_row, plan, marker_set)
            for s, split_name in enumerate(SPLIT_NAMES):
                mask = split == s
                if mask.any():
                    writer.write(
                        split_name, stored.filter(pa.array(mask)), _target_array(y[mask], plan.task)
                    )
            train = split == TRAIN
            if train.any():
                fits.update(columns, train)
        if dropped_missing:
            plan.dropped["missing feature (drop_row)"] = dropped_missing
        splits = writer.close()
    except BaseException:
        writer.abort()
        raise
    return splits


def _drop_missing(
    columns: dict[str, pa.Array],
    split: np.ndarray,
    drop_row: list[str],
    plan: TablePlan,
    marker_set: pa.Array,
) -> int:
    """Take the batch's rows missing a ``drop_row`` feature out of their split (-1, in place).

    Returns:
        How many kept rows were dropped.
    """
    dropped = 0
    for name in drop_row:
        column = columns[name]
        if plan.kinds[name] == ColumnType.NUMERIC:
            missing = np.isnan(column.to_numpy(zero_copy_only=False).astype(np.float64))
        else:
            missing = pc.is_in(column, value_set=marker_set).to_numpy(zero_copy_only=False)
        hit = missing & (split >= 0)
        dropped += int(hit.sum())
        split[hit] = -1
    return dropped


def _check_no_split_empty(splits: dict[str, Split], spec: DataSpec, plan: TablePlan) -> None:
    for name in SPLIT_NAMES:
        if name not in splits or splits[name].num_examples == 0:
            raise DataError(
                f"After cleaning, the {name} split of {spec.source} is empty. Too many rows were "
                f"dropped ({', '.join(f'{k}: {v:,}' for k, v in plan.dropped.items()) or 'none'}) "
                f"or the split shares are too small; relax the cleaning or use more data."
            )


def _describe_table(
    table: TableSource,
    scan: TableScan,
    plan: TablePlan,
    fits: _Fits,
    splits: dict[str, Split],
) -> DatasetDescription:
    """The description of a prepared table, from what pass 2 wrote and fitted."""
    spec = table.spec
    features: TableFeatures | TextFeatures
    preprocessing: TablePreprocessing | TextPreprocessing
    numeric: list[NumericColumn] = []
    categorical: list[CategoricalColumn] = []
    if plan.text_kind is not None:
        from dltrain.data.preparation.vocabulary import describe_texts

        features, preprocessing = describe_texts(
            fits.texts, spec.text, plan.text_kind, spec.sampling
        )
    else:
        numeric = fits.finish_numeric()
        categorical = fits.finish_categorical()
        features = TableFeatures(
            columns=_table_columns(table, plan, fits.roles),
            num_features=len(numeric) + sum(c.width for c in categorical),
        )
        preprocessing = TablePreprocessing(
            numeric=numeric, categorical=categorical, sampling=spec.sampling
        )
    return DatasetDescription(
        task=plan.task,
        features=features,
        target=describe_target(plan, spec.targets, splits, spec.target_transform),
        preprocessing=preprocessing,
        splits=splits,
        source_splits=["train", "test"] if table.has_test else ["train"],
        cleaning=describe_cleaning(plan, numeric, categorical, spec, scan),
    )


def _table_columns(table: TableSource, plan: TablePlan, roles: ColumnRoles) -> list[TableColumn]:
    input_names = keras_input_names(roles.stored)  # once, here; the manifest keeps them
    return [
        TableColumn(
            name=n,
            type=plan.kinds[n],
            dtype="float32" if table.types[n] == pa.float64() else "string",
            used=n in roles.features,
            input_name=input_names[n],
        )
        for n in roles.stored
    ]


def _check_encodings(spec: DataSpec, kinds: dict[str, ColumnType]) -> None:
    """Refuse an encoding set on a feature column that is not read as categories.

    Raises:
        DataError: ``encoding`` or ``embedding_dim`` on a numeric (or text) column.
    """
    for name, column in spec.columns.items():
        kind = kinds.get(name)
        if kind is None or kind == ColumnType.CATEGORICAL:
            continue
        if column.encoding is not None or column.embedding_dim is not None:
            raise DataError(
                f"`data.columns.{name}` sets encoding or embedding_dim, which choose how a "
                f"category column enters the model, but {name!r} is read as {kind.value}. "
                f"Remove them, or set `type: categorical` to read its values as categories."
            )


def _strategy(spec: DataSpec, name: str, kind: ColumnType) -> _Strategy:
    column = spec.columns.get(name, ColumnSpec())
    strategy = column.missing
    if strategy == Missing.AUTO:
        strategy = (
            spec.clean.numeric_missing
            if kind == ColumnType.NUMERIC
            else spec.clean.categorical_missing
        )
    allowed = (
        (Missing.MEAN, Missing.MEDIAN, Missing.MOST_FREQUENT, Missing.CONSTANT, Missing.DROP_ROW)
        if kind == ColumnType.NUMERIC
        else (Missing.MOST_FREQUENT, Missing.CONSTANT, Missing.DROP_ROW)
    )
    if strategy not in allowed:
        raise DataError(
            f"Missing-value strategy {strategy.value!r} does not apply to the {kind.value} column "
            f"{name!r}. Expected one of {', '.join(a.value for a in allowed)} (ffill, bfill and "
            f"interpolate are for time series)."
        )
    if (
        kind == ColumnType.NUMERIC
        and strategy == Missing.CONSTANT
        and isinstance(column.fill_value, str)
    ):
        raise DataError(
            f"`data.columns.{name}.fill_value` is {column.fill_value!r} but {name!r} is numeric. "
            f"Give a number."
        )
    return strategy, column.fill_value


def _derived_strategy(spec: DataSpec, name: str) -> _Strategy:
    """A derived column's missing-value fill: a row cannot be dropped after it was stored.

    Raises:
        DataError: `drop_row` was asked for a derived column.
    """
    strategy, constant = _strategy(spec, name, ColumnType.NUMERIC)
    if strategy == Missing.DROP_ROW and name not in spec.columns:
        return Missing.MEDIAN, constant  # the recipe-wide default drops rows: fill instead
    if strategy == Missing.DROP_ROW:
        raise DataError(
            f"`data.columns.{name}.missing` is drop_row, but {name!r} is derived: its value is "
            f"missing when an input is missing or a division is by zero, and it is filled, not "
            f"dropped. Use median, mean, most_frequent or constant, or set drop_row on the "
            f"source columns it reads."
        )
    return strategy, constant


def _stored_tables(
    spill: Spill, stored: list[str], types: dict[str, pa.DataType]
) -> Iterator[tuple[dict[str, pa.Array], pa.Table]]:
    """Pass 1's batches again, each with the table the shards store (numbers as float32, NaN
    where missing); made on the prefetch thread while the previous batch is fitted."""
    for _, columns in spill.replay():
        arrays = []
        for name in stored:
            column = columns[name]
            if types[name] == pa.float64():
                column = pc.cast(column, pa.float32()).fill_null(np.nan)
            arrays.append(column)
        yield columns, pa.Table.from_arrays(arrays, names=stored)


def _target_array(y: np.ndarray, task: Task) -> np.ndarray:
    return y.astype(np.int64) if task.is_classification else y.astype(np.float32)
