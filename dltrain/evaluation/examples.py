"""The examples an evaluation scores: a prepared split, or labelled raw data given with --data
(read through the same readers prepare used), with what the model fills in per column.

A large split of a table or image predictor is not read into memory: its labels are, and its
inputs are read shard by shard in stored order whenever something needs them (``SplitReader``),
chosen by the size rule training uses (``choose_evaluation_input``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.data.readers.inputs import TableInput, open_input
from dltrain.data.readers.model_input import InputReport, conform_examples
from dltrain.data.store import PreparedDataset, open_store
from dltrain.errors import DataError, RunError
from dltrain.evaluation.request import EvaluationRequest
from dltrain.evaluation.run_model import RunModel
from dltrain.manifest import FeatureKind, SequenceFeatures
from dltrain.recipe.choices import InputMode

# Predictors whose evaluation needs the inputs only to predict (and to sample a few rows):
# their splits may be streamed. Forecasts, autoencoders and GANs score the inputs themselves.
STREAMED_TASKS = ("binary", "multiclass", "regression")
STREAMED_KINDS = (FeatureKind.TABLE, FeatureKind.IMAGE)


@dataclass(frozen=True)
class SplitReader:
    """A prepared split's inputs, read one shard at a time in stored order (never shuffled)."""

    dataset: PreparedDataset
    split: str

    @property
    def num_shards(self) -> int:
        return len(self.dataset.split_entry(self.split).shards)

    def parts(self) -> Iterator[tuple[Any, np.ndarray]]:
        """Each non-empty shard's examples and targets, as ``load_split(resample=False)``
        gives the split's rows, in the same order.

        Raises:
            DataError: a shard is missing or changed since prepare.
        """
        for shard in self.dataset.split_entry(self.split).shards:
            if shard.num_examples:
                yield self.dataset.read_shard(shard)

    def labels(self) -> np.ndarray:
        """Every row's target, reading only the shards' target columns."""
        shards = self.dataset.split_entry(self.split).shards
        return np.concatenate([self.dataset.read_targets(s) for s in shards])

    def rows(self, index: np.ndarray) -> Any:
        """The inputs of rows ``index`` (sorted), one shard held at a time."""
        from dltrain.data.streaming import read_rows

        return read_rows(self.dataset, self.split, index)[0]


@dataclass
class Examples:
    x: Any  # an array, or one array per column for tables; None when ``reader`` streams them
    y: np.ndarray
    label: str  # names the metrics file and the plots folder: test, validation, data-<name>
    source: Mapping[str, object]  # where the examples came from, as metrics.json says it
    inputs: InputReport = field(default_factory=InputReport)  # --data tables: missing, unseen
    reader: SplitReader | None = None  # a streamed split: its inputs are read shard by shard

    def parts(self) -> Iterator[tuple[Any, np.ndarray]]:
        """The examples' inputs and targets: in one piece, or a streamed split shard by shard."""
        if self.reader is None:
            yield self.x, self.y
        else:
            yield from self.reader.parts()

    def outputs(self, predict: Callable[[Any], np.ndarray]) -> np.ndarray:
        """``predict``'s outputs over every example, in order: called once on the inputs in
        memory, or once per shard of a streamed split (only the outputs are kept)."""
        if self.reader is None:
            return np.asarray(predict(self.x))
        return np.concatenate([np.asarray(predict(x)) for x, _ in self.reader.parts()])

    def rows(self, index: np.ndarray) -> Any:
        """The inputs of rows ``index`` (sorted), however the examples are held."""
        if self.reader is not None:
            return self.reader.rows(index)
        if isinstance(self.x, dict):
            return {name: np.asarray(values)[index] for name, values in self.x.items()}
        return np.asarray(self.x)[index]

    @property
    def streamed(self) -> bool:
        return self.reader is not None


def prepared_dataset(run: RunModel) -> PreparedDataset:
    """The prepared dataset the run was trained on, whose splits it held out.

    Raises:
        DataError: it is gone, of another version, or unreadable (naming why and the fix).
        RunError: it was prepared again from another source since.
    """
    if run.data_folder is None:
        why = run.data_problem or "its run.json names no prepared dataset"
        raise DataError(
            f"Run {run.run_dir} cannot read the prepared data it was trained on: {why.rstrip('.')}"
            f". Prepare it again with the run's recipe (`dltrain prepare --recipe "
            f"{run.files.recipe}`), or evaluate on labelled raw data with --data PATH."
        )
    dataset = open_store(run.data_folder)
    if dataset.manifest.source.fingerprint != run.info.data_fingerprint:
        raise RunError(
            f"The prepared dataset {dataset.folder} was rebuilt from a different source since run "
            f"{run.run_dir.name} was trained, so its splits are not the ones the run held out. "
            f"Evaluate a run trained on the current data (train again), or restore the data."
        )
    return dataset


def choose_evaluation_input(
    run: RunModel, dataset: PreparedDataset, split: str, mode: InputMode
) -> tuple[bool, str]:
    """Whether to stream ``split`` rather than read it into memory, and why: training's rule
    (data/streaming.py ``choose_input``) on this split's shards. Models other than table and
    image predictors are always evaluated in memory.
    """
    from dltrain.data.streaming import InputPath, choose_input

    kind = run.manifest.features.kind
    if run.task not in STREAMED_TASKS or kind not in STREAMED_KINDS:
        return False, f"a {run.task} model over {kind.value} inputs is evaluated in memory"
    path, reason = choose_input(dataset, mode, (split,))
    return path is InputPath.STREAM, reason


def split_examples(run: RunModel, split: str, mode: InputMode) -> Examples:
    """A prepared split as stored (the train split unbalanced): in memory, or streamed.

    Raises:
        DataError: the data is missing, changed, or has no such split.
    """
    dataset = prepared_dataset(run)
    streamed, reason = choose_evaluation_input(run, dataset, split, mode)
    reader = SplitReader(dataset, split)
    source: dict[str, object] = {"kind": "split", "folder": str(dataset.folder), "split": split}
    path = "stream" if streamed else "memory"
    source["input"] = {"path": path, "reason": reason, "shards": reader.num_shards}
    if streamed:
        return Examples(None, reader.labels(), split, source, reader=reader)
    x, y = dataset.load_split(split, resample=False)
    return Examples(x, y, split, source)


def load_examples(run: RunModel, request: EvaluationRequest) -> Examples:
    """The examples to evaluate: a prepared split, or labelled raw data passed with --data.

    Raises:
        DataError: missing data, or data whose schema differs from the run's.
    """
    if request.data is None:
        return split_examples(run, request.spec.split.value, request.input)
    path = request.data
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name.split(".")[0]).strip("_") or "input"
    if run.model_input.kind in ("table", "text"):
        x, y, inputs = _labelled_table(run, path)
        source = {"kind": "file", "path": str(path), "files": [str(path)]}
        return Examples(x, y, f"data-{slug}", source, inputs)
    from dltrain.data.readers.formats import read_source
    from dltrain.recipe.data import DataFormat, ImageSpec

    shape = run.model_input.shape
    image = None
    if run.model_input.kind == "image" and len(shape) == 3 and shape[-1] in (1, 3):
        image = ImageSpec(size=[shape[0], shape[1]], channels=shape[-1])  # class folders
    source_arrays = read_source(path, DataFormat.AUTO, image)
    xs = [x for x, _ in source_arrays.splits.values()]
    ys = [y for _, y in source_arrays.splits.values()]
    x = conform_examples(np.concatenate(xs), run.model_input, str(path))
    y = np.concatenate(ys)
    if source_arrays.class_names is not None and run.is_classifier:
        # class folders are numbered in their own order: match them to the run's by name
        unknown = [c for c in source_arrays.class_names if c not in run.classes]
        if unknown:
            raise DataError(
                f"{path} has class folder(s) {', '.join(unknown)} that run {run.run_dir.name} "
                f"does not know. Its classes: {', '.join(run.classes)}. The data's schema "
                f"differs from the run's; rename or drop those folders."
            )
        y = np.asarray([run.classes.index(c) for c in source_arrays.class_names])[y]
    if run.is_classifier and len(y) and (y.min() < 0 or y.max() >= len(run.classes)):
        raise DataError(
            f"{path} has labels from {int(y.min())} to {int(y.max())}, but run "
            f"{run.run_dir.name} knows {len(run.classes)} classes (0-{len(run.classes) - 1}: "
            f"{', '.join(run.classes)}). The data's schema differs from the run's; give "
            f"data labelled like the training source."
        )
    files = [str(p) for p in source_arrays.files]
    return Examples(x, y, f"data-{slug}", {"kind": "file", "path": str(path), "files": files})


def _labelled_table(run: RunModel, path: Path) -> tuple[Any, np.ndarray, InputReport]:
    """A table's feature columns as the model takes them, its target column as labels, and
    what the model will fill in or not recognise per column.

    Class labels are matched to the run's class names (a trailing '.', as in adult.test, is
    forgiven); numeric targets are read in their own units.

    Raises:
        DataError: the target column is absent, or holds labels or values the run cannot score.
    """
    model_input = run.model_input
    reader = open_input(path, model_input, "table")
    assert isinstance(reader, TableInput)
    targets = [t for t in model_input.targets if t in reader.extra]
    if not targets or len(targets) != len(model_input.targets):
        raise DataError(
            f"{path} has no target column {', '.join(model_input.targets) or '(unknown)'}, so "
            f"there is nothing to evaluate against. Give labelled data, or use `dltrain "
            f"predict` for unlabelled rows."
        )
    if run.is_classifier:
        index = {name: i for i, name in enumerate(run.classes)}
        raw = [str(v).strip() for v in reader.extra[targets[0]]]
        labels = [index.get(v, index.get(v.rstrip("."), -1)) for v in raw]
        unknown = sorted({v for v, i in zip(raw, labels, strict=True) if i < 0})
        if unknown:
            raise DataError(
                f"{path} has target values the run does not know as classes: "
                f"{', '.join(map(repr, unknown[:8]))}. Its classes: {', '.join(run.classes)}. "
                f"The data's schema differs from the run's; relabel the rows."
            )
        return reader.features, np.asarray(labels, dtype=np.int64), reader.report
    markers = set(model_input.csv.missing_values)
    values = np.stack([_numeric_targets(path, t, reader.extra[t], markers) for t in targets], 1)
    missing = np.isnan(values).any(axis=1)
    if missing.any():
        raise DataError(
            f"{path}: {int(missing.sum())} row(s) have no target value (an empty cell or a "
            f"missing-value marker in {', '.join(targets)}). Drop them; a row without a target "
            f"cannot be scored."
        )
    return reader.features, values[:, 0] if values.shape[1] == 1 else values, reader.report


def _numeric_targets(path: Path, column: str, cells: np.ndarray, markers: set[str]) -> np.ndarray:
    """A target column's cells as numbers, NaN where missing.

    Raises:
        DataError: a cell that is not a number, or a number that is not finite.
    """
    values = np.full(len(cells), np.nan)
    for row, cell in enumerate(cells):
        text = str(cell).strip()
        if text in markers:
            continue
        try:
            values[row] = float(text)
        except ValueError:
            raise DataError(
                f"{path}: the target column {column!r} holds {text!r} (row {row + 1}), which is "
                f"not a number. Expected the target in its own units; fix or drop the row."
            ) from None
        if not np.isfinite(values[row]):
            raise DataError(
                f"{path}: the target column {column!r} holds {text} (row {row + 1}). A score "
                f"needs finite targets; fix or drop the row."
            )
    return values


def last_observed(x: Any, run: RunModel, width: int) -> np.ndarray | None:
    """The last value of each target in each input window, when the windows hold the targets.

    The manifest names the window's feature columns and the targets; a univariate series is
    its own target.
    """
    if not isinstance(x, np.ndarray) or x.ndim not in (2, 3):
        return None
    window = run.manifest.features
    features = list(window.columns) if isinstance(window, SequenceFeatures) else []
    targets = run.target_names
    if x.ndim == 3 and targets and all(t in features for t in targets):
        return np.asarray(x[:, -1, [features.index(t) for t in targets]], np.float64)
    if x.ndim == 3 and x.shape[-1] == width and not features:
        return np.asarray(x[:, -1, :], np.float64)
    if x.ndim == 2 and width == 1:
        return np.asarray(x[:, -1], np.float64)
    return None
