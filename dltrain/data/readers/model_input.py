"""What a model's raw input is, and what every reader of raw inputs hands on.

``predict`` and ``evaluate --data`` read files into :class:`InputChunk` batches shaped as the
model takes them. :class:`ModelInput` is built from the run's manifest, so the readers parse a
value exactly as ``prepare`` parsed the training source: the same CSV settings, the same text
canonicalisation, the same checks on arrays. :class:`InputReport` counts, per column, what the
model will fill in or not recognise, so a user sees it instead of getting silent guesses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dltrain.data.readers.arrays import check_examples
from dltrain.errors import DataError
from dltrain.manifest import (
    FeatureKind,
    Manifest,
    TableFeatures,
    TablePreprocessing,
    TextFeatures,
)
from dltrain.recipe.data import CsvSpec

Features = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelInput:
    """What one example looks like to the model.

    Attributes:
        kind: image, table, text or sequence (the manifest's ``features.kind``).
        shape: one example's array shape (images, sequences); () for tables and texts.
        dtype: the array's dtype.
        columns: tables: (name, dtype) of every raw input column, in order.
        text_column: texts: the column holding the text.
        targets: the source's target column(s), passed through when an input holds them.
        csv: the run's ``data.csv`` settings, so a table is read as the source was.
        passthrough: tables: input columns the model ignores (identifiers), copied to the
            output as well.
        vocabularies: tables: each category column's known values (missing markers included).
    """

    kind: FeatureKind
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    columns: tuple[tuple[str, str], ...] = ()
    text_column: str | None = None
    targets: tuple[str, ...] = ()
    csv: CsvSpec = field(default_factory=CsvSpec)
    passthrough: tuple[str, ...] = ()
    vocabularies: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: Manifest, csv: CsvSpec | None = None) -> ModelInput:
        """The model input a prepared dataset describes, read with the recipe's CSV settings."""
        features = manifest.features
        columns: tuple[tuple[str, str], ...] = ()
        passthrough: tuple[str, ...] = ()
        vocabularies: dict[str, frozenset[str]] = {}
        if isinstance(features, TableFeatures):
            columns = tuple((c.name, c.dtype) for c in features.columns)
            passthrough = tuple(features.passthrough)
            preprocessing = manifest.preprocessing_as(TablePreprocessing)
            vocabularies = {c.column: frozenset(c.vocabulary) for c in preprocessing.categorical}
        return cls(
            kind=features.kind,
            shape=tuple(getattr(features, "shape", ())),
            dtype=str(getattr(features, "dtype", "float32")),
            columns=columns,
            text_column=features.column if isinstance(features, TextFeatures) else None,
            targets=tuple(manifest.target_names),
            csv=csv or CsvSpec(),
            passthrough=passthrough,
            vocabularies=vocabularies,
        )


@dataclass
class InputChunk:
    """A batch of examples plus the columns that pass through to the output."""

    features: Features
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        if isinstance(self.features, dict):
            return len(next(iter(self.features.values()))) if self.features else 0
        return len(self.features)


@dataclass(frozen=True)
class ColumnReport:
    """What the model does with one input column's values that training did not see as such."""

    column: str
    missing: int  # missing values, which the model fills as training fitted it to
    unseen: int  # categories training never saw: the out-of-vocabulary bucket

    def to_json(self) -> dict[str, int | str]:
        return {"column": self.column, "missing": self.missing, "unseen": self.unseen}


@dataclass(frozen=True)
class InputReport:
    """Per column, the missing values filled and unseen categories among the inputs."""

    columns: tuple[ColumnReport, ...] = ()

    @property
    def noteworthy(self) -> tuple[ColumnReport, ...]:
        """The columns with anything to report."""
        return tuple(c for c in self.columns if c.missing or c.unseen)

    def to_json(self) -> list[dict[str, int | str]]:
        return [c.to_json() for c in self.columns]


def report_table(
    features: dict[str, np.ndarray], model: ModelInput, markers: frozenset[str]
) -> InputReport:
    """Count, per model column, the missing values and (category columns) unseen values.

    Args:
        features: the raw columns as the model gets them (NaN for missing numbers).
        model: the model's input, with each category column's vocabulary.
        markers: the missing-value markers of the table's CSV settings.
    """
    reports = []
    for name, dtype in model.columns:
        if name in model.passthrough:
            continue
        values = features[name]
        if dtype == "float32":
            reports.append(ColumnReport(name, missing=int(np.isnan(values).sum()), unseen=0))
            continue
        known = model.vocabularies.get(name, frozenset())
        distinct, counts = np.unique(values.astype(str), return_counts=True)
        missing = sum(int(c) for v, c in zip(distinct, counts, strict=True) if v in markers)
        unseen = sum(
            int(c)
            for v, c in zip(distinct, counts, strict=True)
            if v not in markers and v not in known
        )
        reports.append(ColumnReport(name, missing=missing, unseen=unseen))
    return InputReport(tuple(reports))


def conform_examples(x: np.ndarray, model: ModelInput, where: str) -> np.ndarray:
    """Check raw examples against the model's input and cast them to its dtype.

    Grey images without a channel axis get one, as prepare does.

    Raises:
        DataError: the shape differs, values are not finite numbers (as prepare refuses them), or
            cannot be the raw values the model was trained on (floats given to a model that
            takes 8-bit pixels and scales them itself).
    """
    if model.kind == FeatureKind.TABLE:  # its shape is (): "takes ()" would say nothing
        names = ", ".join(name for name, _ in model.columns)
        raise DataError(
            f"{where} holds an array of examples, but the model takes table rows with the "
            f"columns {names}. Give a CSV/TSV or Parquet file with those columns."
        )
    if x.ndim == len(model.shape) and len(model.shape) == 3 and model.shape[-1] == 1:
        x = x[..., np.newaxis]
    if tuple(x.shape[1:]) != model.shape:
        raise DataError(
            f"{where} holds examples of shape {tuple(x.shape[1:])}, but the model takes "
            f"{model.shape} ({model.dtype}). The data's schema differs from what the run was "
            f"trained on; give data laid out like the training source."
        )
    check_examples(x, where)
    target = np.dtype(model.dtype)
    if np.issubdtype(target, np.integer) and not np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(target)
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if low < info.min or high > info.max or not np.all(x == np.round(x)):
            raise DataError(
                f"{where} holds {x.dtype} values in [{low:g}, {high:g}], but the model takes raw "
                f"{model.dtype} values ({info.min}-{info.max}) as in its training source and "
                f"scales them itself. Give the raw values (e.g. pixels 0-255), not rescaled ones."
            )
    return x.astype(target, copy=False)


class InputReader:
    """Base of the readers: ``num_examples``, ``columns`` and ``chunks(batch_size)``."""

    format: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, path: Path, model: ModelInput) -> None:
        self.path = path
        self.model = model
        self.num_examples = 0
        self.columns: list[str] = []
        self.report = InputReport()

    @classmethod
    def matches(cls, path: Path, model: ModelInput) -> bool:
        """Whether this reader takes ``path`` for ``model`` (auto-detection)."""
        raise NotImplementedError

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        raise NotImplementedError


class ArrayInput(InputReader):
    """Readers whose examples fit in memory as one array."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        self.features = np.empty((0, *model.shape))
        self.extra: dict[str, np.ndarray] = {}

    def _set(self, features: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        self.features = conform_examples(features, self.model, str(self.path))
        self.num_examples = len(self.features)
        self.extra = {"row": np.arange(self.num_examples), **extra}
        self.columns = list(self.extra)

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        for start in range(0, self.num_examples, batch_size):
            part = slice(start, start + batch_size)
            yield InputChunk(
                self.features[part], {k: v[part].tolist() for k, v in self.extra.items()}
            )
