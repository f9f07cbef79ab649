"""Statistics fitted on the training split only, and the preprocessing they define.

Each ``*Fit`` accumulates training rows batch by batch; ``finish`` turns it into the manifest's
typed column entry (``NumericColumn``, ``CategoricalColumn``) that ``models/io.py`` builds Keras
layers from (imputation, clipping, log,
Normalization, StringLookup, TextVectorization). Medians and quantiles come from a uniform
sample of ``RESERVOIR`` training values, exact for smaller training splits; means and variances
are exact whatever the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dltrain.data.readers.arrays import FLOAT32_MAX
from dltrain.manifest import CategoricalColumn, NumericColumn
from dltrain.recipe.data import (
    EMBEDDING_THRESHOLD,
    CategoryEncoding,
    CleanSpec,
    Missing,
    Outliers,
    Scaling,
)

RESERVOIR = 100_000
# Each numeric column keeps its scaled training values' quantiles at 0, 1/64, ..., 1: the edges
# piecewise-linear embeddings place their bins at (up to 64 bins a column).
QUANTILE_POINTS = 65


@dataclass
class NumericFit:
    """Exact moments and a reservoir sample of one numeric column's training values."""

    name: str
    seed: int
    count: int = 0
    missing: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = np.inf
    maximum: float = -np.inf
    _keys: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _sample: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._threshold = 1.0  # keys at or above it cannot enter the sample (1.0: all can)

    def update(self, values: np.ndarray) -> None:
        values = values.astype(np.float64, copy=False)
        present = values[~np.isnan(values)]
        self.missing += len(values) - len(present)
        if not len(present):
            return
        self.count += len(present)
        self.total += float(present.sum())
        self.total_sq += float(np.square(present).sum())
        self.minimum = min(self.minimum, float(present.min()))
        self.maximum = max(self.maximum, float(present.max()))
        new_keys = self._rng.random(len(present))
        if self._threshold < 1.0:  # only values that beat the last trimmed sample can enter
            entering = new_keys < self._threshold
            new_keys, present = new_keys[entering], present[entering]
        self._keys = np.concatenate([self._keys, new_keys])
        self._sample = np.concatenate([self._sample, present])
        # Trimming to the RESERVOIR smallest keys only when twice as many wait costs a
        # partition every few batches, not every batch; the kept set is the same either way.
        if len(self._keys) > 2 * RESERVOIR:
            self._trim()

    def _trim(self) -> None:
        if len(self._keys) > RESERVOIR:
            keep = np.argpartition(self._keys, RESERVOIR)[:RESERVOIR]
            self._keys, self._sample = self._keys[keep], self._sample[keep]
            self._threshold = float(self._keys.max())

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        if not self.count:
            return 0.0
        return float(np.sqrt(max(self.total_sq / self.count - self.mean**2, 0.0)))

    def fill_value(self, strategy: Missing, constant: float | str | None) -> float:
        self._trim()
        if not self.count:
            return 0.0 if constant is None else float(constant)
        if strategy == Missing.MEAN:
            return self.mean
        if strategy == Missing.CONSTANT:
            return 0.0 if constant is None else float(constant)
        if strategy == Missing.MOST_FREQUENT:
            values, counts = np.unique(self._sample, return_counts=True)
            return float(values[np.argmax(counts)])
        return float(np.median(self._sample))  # median, and drop_row's fallback at predict time

    def finish(
        self,
        strategy: Missing,
        constant: float | str | None,
        outliers: Outliers,
        clean: CleanSpec,
        scaling: Scaling,
    ) -> NumericColumn:
        """The column's preprocessing, computed on the training split.

        Args:
            strategy: how missing values are filled.
            constant: the fill value of ``constant``.
            outliers: how values are clipped to ``low``/``high``.
            clean: the recipe's cleaning thresholds (z-score, IQR multiplier).
            scaling: the normalisation (``log`` first shifts and takes ``log1p``).

        Returns:
            ``fill``, clip ``low``/``high``, ``log`` ``shift``, then ``mean``/``variance`` for
            Normalization, and the ``quantiles`` of the values so scaled; no ``expression``
            (the caller sets it for a derived column).
        """
        self._trim()
        fill = self.fill_value(strategy, constant)
        low, high = self._clip_bounds(outliers, clean)
        log = scaling == Scaling.LOG
        shift = max(self.minimum, low) if log and self.count else 0.0

        def transform(x: np.ndarray) -> np.ndarray:
            x = np.clip(x, low, high)
            return np.log1p(np.maximum(x - shift, 0.0)) if log else x

        exact = low == -FLOAT32_MAX and high == FLOAT32_MAX and not log
        total = self.count + self.missing
        filled = float(transform(np.array([fill]))[0])
        if exact:
            mean_present, sq_present = (
                self.mean,
                (self.total_sq / self.count if self.count else 0.0),
            )
            lo_present, hi_present = self.minimum, self.maximum
        else:
            t = transform(self._sample) if len(self._sample) else np.zeros(1)
            mean_present, sq_present = float(t.mean()), float(np.square(t).mean())
            lo_present, hi_present = float(t.min()), float(t.max())
        if total:
            mean = (self.count * mean_present + self.missing * filled) / total
            square = (self.count * sq_present + self.missing * filled**2) / total
        else:
            mean, square = 0.0, 1.0
        variance = max(square - mean**2, 0.0)
        lo = min(lo_present, filled) if self.missing else lo_present
        hi = max(hi_present, filled) if self.missing else hi_present
        if not self.count:
            lo, hi = filled, filled
        norm_mean, norm_var = _normalisation(scaling, mean, variance, (lo, hi))
        quantiles = None
        if len(self._sample):
            scaled = (transform(self._sample) - norm_mean) / np.sqrt(norm_var)
            # observed values, not interpolations: a count column's edges sit on its counts
            points = np.quantile(
                scaled, np.linspace(0.0, 1.0, QUANTILE_POINTS), method="inverted_cdf"
            )
            quantiles = [float(np.float32(q)) for q in points]  # as the model's float32 sees them
        return NumericColumn(
            column=self.name,
            missing=strategy,
            fill=fill,
            outliers=outliers,
            low=low,
            high=high,
            scaling=scaling,
            log=log,
            shift=shift,
            mean=norm_mean,
            variance=norm_var,
            train_min=self.minimum if self.count else None,
            train_max=self.maximum if self.count else None,
            train_missing=self.missing,
            quantiles=quantiles,
        )

    def _clip_bounds(self, outliers: Outliers, clean: CleanSpec) -> tuple[float, float]:
        """``(low, high)`` that ``outliers`` clips the column to (float32's range: none)."""
        if outliers == Outliers.ZSCORE and self.count:
            low = self.mean - clean.zscore_threshold * self.std
            high = self.mean + clean.zscore_threshold * self.std
            return low, high
        if outliers == Outliers.IQR and self.count:
            q1, q3 = np.percentile(self._sample, [25, 75])
            low = float(q1 - clean.iqr_multiplier * (q3 - q1))
            high = float(q3 + clean.iqr_multiplier * (q3 - q1))
            return low, high
        return -FLOAT32_MAX, FLOAT32_MAX


def _normalisation(
    scaling: Scaling, mean: float, variance: float, span: tuple[float, float]
) -> tuple[float, float]:
    """The ``(mean, variance)`` Normalization takes for ``scaling``, from the transformed
    column's moments and its range ``span``."""
    lo, hi = span
    if scaling in (Scaling.STANDARD, Scaling.LOG):
        norm_mean, norm_var = mean, variance
    elif scaling == Scaling.UNIT:
        norm_mean, norm_var = lo, (hi - lo) ** 2
    elif scaling == Scaling.SYMMETRIC:
        norm_mean, norm_var = (lo + hi) / 2, ((hi - lo) / 2) ** 2
    else:
        norm_mean, norm_var = 0.0, 1.0
    if norm_var <= 1e-24:
        norm_var = 1.0  # a constant column: centre it, do not blow it up
    return norm_mean, norm_var


@dataclass
class CategoryFit:
    """Counts of one category column's training values (bounded)."""

    name: str
    markers: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    cap: int = 200_000

    def update(self, values: list[str], counts: list[int]) -> None:
        for value, count in zip(values, counts, strict=True):
            if value in self.counts:
                self.counts[value] += count
            elif len(self.counts) < self.cap:
                self.counts[value] = count

    def finish(
        self, strategy: Missing, constant: float | str | None, max_categories: int
    ) -> CategoricalColumn:
        """The column's vocabulary and lookup mapping, from the training split's counts.

        Args:
            strategy: where missing markers map (``constant``: their own or the constant's
                index; ``most_frequent``: the top category's; ``drop_row``: out of vocabulary).
            constant: the fill value of ``constant``.
            max_categories: how many of the most frequent values are kept.

        Returns:
            Vocabulary (most frequent first) and the index mapping StringLookup's output goes
            through: 0 is the out-of-vocabulary bucket.
        """
        present = [(v, c) for v, c in self.counts.items() if v not in self.markers]
        present.sort(key=lambda item: (-item[1], item[0]))
        tokens = [v for v, _ in present[:max_categories]]
        if strategy == Missing.CONSTANT and constant is not None and str(constant) not in tokens:
            tokens.append(str(constant))
        markers = [m for m in self.markers if m not in tokens]
        vocabulary = tokens + markers
        mapping = list(range(len(tokens) + 1))  # OOV and the tokens map to themselves
        if strategy == Missing.CONSTANT:
            missing_index = (
                tokens.index(str(constant)) + 1 if constant is not None else len(tokens) + 1
            )
            num_tokens = len(tokens) + 1 + (0 if constant is not None else 1)
        elif strategy == Missing.MOST_FREQUENT and tokens:
            missing_index, num_tokens = 1, len(tokens) + 1
        else:  # drop_row: rows were dropped; at predict time a marker is out of vocabulary
            missing_index, num_tokens = 0, len(tokens) + 1
        mapping += [missing_index] * len(markers)
        missing_rows = sum(self.counts.get(m, 0) for m in self.markers)
        return CategoricalColumn(
            column=self.name,
            missing=strategy,
            vocabulary=vocabulary,
            mapping=mapping,
            num_tokens=num_tokens,
            out_of_vocabulary=len(present) - len(tokens[: len(present)]),
            train_missing=missing_rows,
            most_frequent=tokens[0] if tokens else None,
        )


def embedding_width(num_tokens: int) -> int:
    """fastai's width rule for an embedded category column, capped at 50.

    Example:
        >>> [embedding_width(n) for n in (2, 16, 43, 100, 1000)]
        [2, 8, 13, 21, 50]
    """
    return max(1, min(50, round(1.6 * num_tokens**0.56)))


def encode_category(
    entry: CategoricalColumn, encoding: CategoryEncoding, embedding_dim: int | None = None
) -> CategoricalColumn:
    """The column's entry with its encoding decided: ``auto`` becomes an embedding when the
    one-hot block (``num_tokens`` wide) would be wider than ``EMBEDDING_THRESHOLD``, else one-hot.

    Args:
        entry: the fitted column.
        encoding: the recipe's choice for it.
        embedding_dim: the recipe's width for an embedding (None: ``embedding_width``).
    """
    if encoding == CategoryEncoding.AUTO:
        wide = entry.num_tokens > EMBEDDING_THRESHOLD
        encoding = CategoryEncoding.EMBEDDING if wide else CategoryEncoding.ONE_HOT
    if encoding == CategoryEncoding.ONE_HOT:
        return entry.model_copy(update={"encoding": encoding, "embedding_dim": None})
    width = embedding_dim or embedding_width(entry.num_tokens)
    return entry.model_copy(update={"encoding": encoding, "embedding_dim": width})


def class_weights(counts: list[int]) -> list[float]:
    """Balanced class weights, n / (k · count_c), as scikit-learn computes them (0 for absent
    classes, which never occur in training anyway)."""
    total, k = sum(counts), len(counts)
    return [round(total / (k * c), 6) if c else 0.0 for c in counts]
