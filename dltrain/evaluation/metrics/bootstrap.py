"""Percentile bootstrap intervals of a scorer's headline metrics (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dltrain.evaluation.metrics.scores import Scorer


@dataclass(frozen=True)
class Interval:
    """A confidence interval of one metric."""

    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        """The interval as the metrics document's ``intervals`` entry holds it."""
        return {"low": self.low, "high": self.high}


def bootstrap_intervals(
    scorer: Scorer, resamples: int, seed: int, confidence: float = 0.95
) -> dict[str, Interval]:
    """Percentile bootstrap intervals of every headline metric.

    Each resample draws n examples with replacement; its counts are the weights of one
    ``scorer.headline`` call. Metrics undefined in a resample (AUC with one class drawn) skip it.

    Args:
        scorer: the task's scorer.
        resamples: number of bootstrap resamples (1,000 gives stable 95 % bounds).
        seed: fixes the resamples, so the same run gives the same interval.
        confidence: the interval's coverage.
    """
    rng = np.random.default_rng(seed)
    n = scorer.num_examples
    drawn: dict[str, list[float]] = {}
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        for name, value in scorer.headline(counts).items():
            if value is not None and np.isfinite(value):
                drawn.setdefault(name, []).append(value)
    tail = 100 * (1 - confidence) / 2
    intervals = {}
    for name, values in drawn.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        intervals[name] = Interval(float(low), float(high))
    return intervals
