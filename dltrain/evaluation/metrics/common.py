"""The arithmetic every task's metrics share: per-example weights, safe division, weighted
quantiles (NumPy only)."""

from __future__ import annotations

import numpy as np


def unit_weights(n: int, weights: np.ndarray | None) -> np.ndarray:
    """``weights`` as float64, or one per example when there are none (an unweighted pass)."""
    return np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, np.float64)


def divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator``, 0 where the denominator is not positive."""
    # An empty denominator gives 0 (scikit-learn's zero_division=0), not NaN.
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(
        numerator, denominator, out=np.zeros_like(numerator), where=np.asarray(denominator) > 0
    )


def mean_defined(values: list[float | None]) -> float | None:
    """The mean of the values that are defined; None when none is (a macro AUC of nothing)."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def weighted_quantile(values: np.ndarray, weights: np.ndarray | None, q: float) -> float:
    """The smallest value whose weighted cumulative share reaches ``q`` (NumPy's inverted_cdf)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(unit_weights(len(values), weights)[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(index, len(values) - 1)])
