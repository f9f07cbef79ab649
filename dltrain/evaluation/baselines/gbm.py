"""The classical baseline: scikit-learn's histogram gradient boosting on the same training split.

Fitted once, lazily at the first ``evaluate`` that wants it (``prepare`` must not import
scikit-learn), and cached with the prepared data as ``baseline-gbm.pickle``: the cache names the
dataset it was fitted on (source fingerprint, data-spec digest, creation time) and the
scikit-learn version, so a re-prepared dataset or another scikit-learn fits it again.

Tables give their raw prepared columns: numbers as floats (NaN where missing, which the trees
route on their own), categories as ``categorical_features`` coded by the vocabulary prepare
fitted on the training split, free-text columns left out. Small images give their flattened
pixels. Early stopping watches the prepared validation split; the fit is seeded.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.atomic import atomic_path
from dltrain.data.store import PreparedDataset
from dltrain.errors import FileSystemError
from dltrain.manifest import (
    FeatureKind,
    ImageFeatures,
    Manifest,
    TableFeatures,
    TablePreprocessing,
)

CACHE_FILE = "baseline-gbm.pickle"
CACHE_VERSION = 1
# Images of at most 16×16 grey values: the trees' cost grows with pixels × rows × classes, and
# on MNIST-sized images (784 values, 10 classes) even the capped fit below took 192 s of a
# first `evaluate` (the demo, 2 shared cores) for a weak baseline (0.80-0.88 accuracy) that
# any CNN passes; on 8×8 digits it fits in seconds and is a fair rival.
MAX_IMAGE_FEATURES = 256
# Training rows the fit reads at most, drawn at random (seeded) above it. Each boosting round
# builds one tree per class over rows × pixel values, so images are capped by that product.
# On the shared 2-core machine (load 7-8): 10,000 Fashion-MNIST images (784 values, 10 classes)
# were not done after 15 minutes; the 1,275 this cap allows took 100 s (74 s of CPU) and score
# 0.80 test accuracy. California housing's 16,512 rows took 20-40 s, adult's 32,561 about 30 s.
MAX_TRAIN_ROWS = {FeatureKind.TABLE: 200_000, FeatureKind.IMAGE: 10_000}
MAX_IMAGE_CELLS = 10_000_000  # training rows × pixel values × classes
MAX_VALIDATION_ROWS = 50_000
MAX_ITER = 300  # boosting rounds; early stopping ends most fits far sooner
MAX_CATEGORIES = 254  # the trees' bins hold at most 255 values, one kept for "missing"

Status = Callable[[str], None]


@dataclass(frozen=True)
class GbmEncoder:
    """Turns a model's raw inputs (a table's columns, or image arrays) into one float matrix."""

    kind: FeatureKind
    numeric: list[str] = field(default_factory=list)
    categorical: list[tuple[str, list[str]]] = field(default_factory=list)  # column, vocabulary

    @property
    def categorical_mask(self) -> np.ndarray | None:
        if not self.categorical:
            return None
        return np.asarray([False] * len(self.numeric) + [True] * len(self.categorical))

    def matrix(self, x: Any) -> np.ndarray:
        """The examples as an (n, features) float matrix; categories coded, unknown ones NaN."""
        if self.kind != FeatureKind.TABLE:
            array = np.asarray(x)
            return array.reshape(len(array), -1).astype(np.float32)
        parts = [_numbers(np.asarray(x[name])) for name in self.numeric]
        for name, vocabulary in self.categorical:
            index = {value: float(i) for i, value in enumerate(vocabulary)}
            cells = np.asarray(x[name], dtype=object)
            parts.append(np.asarray([index.get(str(v), np.nan) for v in cells], np.float64))
        return np.stack(parts, axis=1)


def _numbers(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    import pandas as pd

    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), np.float64)


@dataclass
class GbmBaseline:
    """A fitted gradient-boosting baseline, as cached with the prepared data."""

    key: dict[str, str]  # the dataset and scikit-learn it was fitted with
    encoder: GbmEncoder
    models: list[Any]  # one classifier, or one regressor per target
    num_classes: int  # 0 for regression
    notes: list[str]  # how it was fitted: rows drawn, columns left out
    seconds: float

    def predict(self, x: Any, y_shape: tuple[int, ...]) -> np.ndarray:
        """Its outputs on ``x`` as the task's scorer reads a model's: class probabilities
        (n, classes), or targets shaped like ``y_shape``."""
        matrix = self.encoder.matrix(x)
        if self.num_classes:
            model = self.models[0]
            probabilities = np.zeros((len(matrix), self.num_classes))
            probabilities[:, model.classes_.astype(np.int64)] = model.predict_proba(matrix)
            return probabilities
        columns = [model.predict(matrix) for model in self.models]
        return np.stack(columns, axis=1).reshape(y_shape)


def gbm_unavailable(manifest: Manifest, task: str) -> str | None:
    """Why there is no gradient-boosting baseline for this data; None when there is one."""
    features = manifest.features
    if task not in ("binary", "multiclass", "regression"):
        return f"no gradient-boosting baseline for {task} models"
    if isinstance(features, ImageFeatures):
        size = int(np.prod(features.shape))
        if size > MAX_IMAGE_FEATURES:
            return (
                f"no gradient-boosting baseline: images of {size:,} pixel values are too large "
                f"for it to be cheap (at most {MAX_IMAGE_FEATURES:,})"
            )
        return None
    if not isinstance(features, TableFeatures):
        return f"no gradient-boosting baseline for {features.kind.value} inputs"
    encoder = _table_encoder(manifest)
    if not encoder.numeric and not encoder.categorical:
        return "no gradient-boosting baseline: the table has no numeric or category columns"
    return None


def _table_encoder(manifest: Manifest) -> GbmEncoder:
    prep = manifest.preprocessing_as(TablePreprocessing)
    numeric = [c.column for c in prep.numeric if c.expression is None]
    categorical = [(c.column, c.vocabulary[:MAX_CATEGORIES]) for c in prep.categorical]
    return GbmEncoder(FeatureKind.TABLE, numeric, categorical)


def cache_key(manifest: Manifest) -> dict[str, str]:
    """What a cached fit must match: the dataset (a re-prepare changes it) and scikit-learn."""
    import sklearn

    return {
        "cache_version": str(CACHE_VERSION),
        "fingerprint": manifest.source.fingerprint,
        "data_spec_digest": manifest.data_spec_digest,
        "created": manifest.created,
        "sklearn": sklearn.__version__,
    }


def cached_gbm(dataset: PreparedDataset) -> GbmBaseline | None:
    """The cached fit of this dataset; None when there is none, or it is stale or damaged."""
    path = dataset.folder / CACHE_FILE
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            found = pickle.load(handle)  # our own file, in the user's prepared-data folder
    except Exception:  # a damaged or foreign cache is fitted again, never trusted
        return None
    if not isinstance(found, GbmBaseline) or found.key != cache_key(dataset.manifest):
        return None
    return found


def load_or_fit_gbm(
    dataset: PreparedDataset, task: str, say: Status
) -> tuple[GbmBaseline, str | None]:
    """The cached gradient-boosting baseline of ``dataset``, fitted and cached first if need be.

    Args:
        dataset: the prepared dataset the run was trained on.
        task: binary, multiclass or regression.
        say: receives a line when it is fitted.

    Returns:
        The baseline, and a note when it was fitted now (where it is cached, or why it could
        not be); None when it came from the cache.
    """
    found = cached_gbm(dataset)
    if found is not None:
        return found, None
    say("Fitting the gradient-boosting baseline (cached for next time)")
    fitted = fit_gbm(dataset, task)
    path = dataset.folder / CACHE_FILE
    note = f"gbm fitted in {fitted.seconds:.1f} s and cached in {path}"
    try:
        with atomic_path(path) as tmp, tmp.open("xb") as handle:
            pickle.dump(fitted, handle, protocol=pickle.HIGHEST_PROTOCOL)
    except FileSystemError as exc:
        note = f"gbm fitted in {fitted.seconds:.1f} s but not cached ({exc.message})"
    return fitted, note


def fit_gbm(dataset: PreparedDataset, task: str) -> GbmBaseline:
    """Fit the baseline on the training split, early stopping on the validation split.

    Raises:
        DataError: a shard is missing or changed.
        ValueError: a training split of one class.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    manifest = dataset.manifest
    kind = manifest.features.kind
    encoder = _table_encoder(manifest) if kind == FeatureKind.TABLE else GbmEncoder(kind)
    seed = manifest.seed
    notes: list[str] = []
    x, y = _rows(dataset, "train", _row_cap(manifest), seed, notes)
    validation = None
    if "validation" in manifest.splits and manifest.splits["validation"].num_examples:
        validation = _rows(dataset, "validation", MAX_VALIDATION_ROWS, seed, [])
    matrix = encoder.matrix(x)
    if isinstance(manifest.features, TableFeatures):
        used = {c.name for c in manifest.features.used}
        left_out = sorted(used - set(encoder.numeric) - {n for n, _ in encoder.categorical})
        if left_out:
            notes.append(f"gbm leaves out {', '.join(left_out)} (text and derived columns)")
    settings: dict[str, Any] = {
        "max_iter": MAX_ITER,
        "random_state": seed,
        "categorical_features": encoder.categorical_mask,
        "early_stopping": validation is not None,
        "n_iter_no_change": 10,
    }
    started = time.perf_counter()
    models: list[Any]
    if task in ("binary", "multiclass"):
        labels = np.asarray(y, np.int64)
        if len(np.unique(labels)) < 2:
            raise ValueError("the training split holds one class")
        model = HistGradientBoostingClassifier(**settings)
        model.fit(matrix, labels, **_validation(encoder, validation, np.unique(labels)))
        models, num_classes = [model], manifest.num_classes
    else:
        targets = np.asarray(y, np.float64).reshape(len(matrix), -1)
        models = []
        for j in range(targets.shape[1]):
            model = HistGradientBoostingRegressor(**settings)
            model.fit(matrix, targets[:, j], **_validation(encoder, validation, None, j))
            models.append(model)
        num_classes = 0
    seconds = time.perf_counter() - started
    return GbmBaseline(cache_key(manifest), encoder, models, num_classes, notes, seconds)


def _row_cap(manifest: Manifest) -> int:
    """The most training rows the fit reads: images by rows × pixel values × classes."""
    features = manifest.features
    cap = MAX_TRAIN_ROWS.get(features.kind, 10_000)
    if isinstance(features, ImageFeatures):
        cells = int(np.prod(features.shape)) * max(manifest.num_classes, 1)
        cap = min(cap, max(1_000, MAX_IMAGE_CELLS // cells))
    return cap


def _rows(
    dataset: PreparedDataset, split: str, cap: int, seed: int, notes: list[str]
) -> tuple[Any, np.ndarray]:
    """A split as stored (not resampled), drawn down to ``cap`` rows at random (seeded)."""
    from dltrain.data.streaming import read_rows

    total = dataset.num_examples(split, resample=False)
    if total <= cap:
        return dataset.load_split(split, resample=False)
    rows = np.sort(np.random.default_rng(seed).choice(total, cap, replace=False))
    notes.append(f"gbm fitted on {cap:,} of the {total:,} {split} rows, drawn at random")
    if type(dataset) is PreparedDataset:  # shard by shard: a large split is never whole
        return read_rows(dataset, split, rows)
    x, y = dataset.load_split(split, resample=False)  # a view (a fold) holds its rows already
    return ({k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]), y[rows]


def _validation(
    encoder: GbmEncoder,
    validation: tuple[Any, np.ndarray] | None,
    known: np.ndarray | None,
    target: int = 0,
) -> dict[str, np.ndarray]:
    """The validation split as ``fit``'s X_val/y_val; classes unseen in training left out."""
    if validation is None:
        return {}
    x, y = validation
    matrix = encoder.matrix(x)
    if known is None:
        targets = np.asarray(y, np.float64).reshape(len(matrix), -1)
        return {"X_val": matrix, "y_val": targets[:, target]}
    labels = np.asarray(y, np.int64)
    keep = np.isin(labels, known)
    return {"X_val": matrix[keep], "y_val": labels[keep]}


def cache_path(folder: Path) -> Path:
    """Where a prepared dataset's gradient-boosting baseline is cached."""
    return folder / CACHE_FILE
