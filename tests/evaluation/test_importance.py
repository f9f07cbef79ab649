"""Permutation importance over a tiny table where one column carries the signal."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from dltrain.evaluation.catalog import Better
from dltrain.evaluation.importance import ImportanceSettings, permutation_importance


def _table(rows: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {"noise": rng.normal(size=rows), "signal": rng.normal(size=rows)}
    return columns, columns["signal"] + 0.3 * rng.normal(size=rows)


def _matrix(columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([columns["noise"], columns["signal"]])


def test_the_signal_column_ranks_first_and_noise_near_zero() -> None:
    columns, score = _table(400, seed=0)
    labels = (score > 0).astype(int)
    model = LogisticRegression().fit(_matrix(columns), labels)

    def accuracy(rows: dict[str, np.ndarray], index: np.ndarray) -> float:
        return float((model.predict(_matrix(rows)) == labels[index]).mean())

    found = permutation_importance(
        columns, accuracy, ("accuracy", Better.HIGHER), ImportanceSettings(repeats=5, seed=1)
    )
    first, second = found.columns
    assert first.column == "signal"
    assert first.drop > 0.3 and first.low > 0.2  # shuffling it costs the model its accuracy
    assert second.column == "noise"
    assert abs(second.drop) < 0.03 and second.low < 0.01
    assert found.value == pytest.approx(accuracy(columns, np.arange(400)))
    assert len(first.drops) == 5 and first.low < first.drop < first.high


def test_a_lower_is_better_metric_counts_a_rise_as_a_drop() -> None:
    columns, target = _table(300, seed=2)
    model = LinearRegression().fit(_matrix(columns), target)

    def rmse(rows: dict[str, np.ndarray], index: np.ndarray) -> float:
        return float(np.sqrt(((model.predict(_matrix(rows)) - target[index]) ** 2).mean()))

    found = permutation_importance(columns, rmse, ("rmse", Better.LOWER), ImportanceSettings())
    assert [c.column for c in found.columns] == ["signal", "noise"]
    assert found.columns[0].drop > 0.5  # rmse rose by more than the noise's 0.3


def test_rows_beyond_the_cap_are_sampled_with_the_seed() -> None:
    columns, target = _table(1000, seed=3)
    seen: list[int] = []

    def count(rows: dict[str, np.ndarray], index: np.ndarray) -> float:
        seen.append(len(index))
        return float(np.corrcoef(rows["signal"], target[index])[0, 1])

    settings = ImportanceSettings(repeats=3, max_rows=200, seed=4)
    found = permutation_importance(columns, count, ("r", Better.HIGHER), settings)
    assert (found.num_rows, found.num_examples) == (200, 1000)
    assert set(seen) == {200} and len(seen) == 1 + 2 * 3
    again = permutation_importance(columns, count, ("r", Better.HIGHER), settings)
    assert again.columns == found.columns
