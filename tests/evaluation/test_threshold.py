"""Threshold objectives: parsing, and the choice checked against a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from dltrain.errors import ExitCode, ThresholdUnreachable, UsageError
from dltrain.evaluation.threshold import (
    choose_threshold,
    parse_objective,
)


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    y = (rng.random(400) < 0.3).astype(int)  # imbalanced: 30 % positive
    p = 1 / (1 + np.exp(-(rng.normal(size=400) + 1.2 * (2 * y - 1))))
    return y, p


def brute_force(y: np.ndarray, p: np.ndarray, goal: str, constraint=None) -> tuple[float, float]:
    """Try every distinct score as the threshold, counting the confusion cells directly."""
    best, best_t = -np.inf, None
    positive = y == 1
    for t in sorted(set(p), reverse=True):  # highest first: ties keep the highest threshold
        flagged = p >= t
        tp, fp = np.sum(flagged & positive), np.sum(flagged & ~positive)
        fn, tn = np.sum(~flagged & positive), np.sum(~flagged & ~positive)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn)
        values = {
            "f1": 2 * tp / (2 * tp + fp + fn),
            "accuracy": (tp + tn) / len(y),
            "balanced_accuracy": (recall + tn / (tn + fp)) / 2,
            "precision": precision,
            "recall": recall,
        }
        if constraint and values[constraint[0]] < constraint[1]:
            continue
        if values[goal] > best + 1e-12:
            best, best_t = values[goal], t
    assert best_t is not None
    return float(best_t), float(best)


def test_f1_choice_agrees_with_scikit_learn(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    choice = choose_threshold(y, p, parse_objective("f1"), "validation")
    assert choice.achieved["f1"] == pytest.approx(sk.f1_score(y, p >= choice.value))
    assert choice.achieved["precision"] == pytest.approx(sk.precision_score(y, p >= choice.value))


@pytest.mark.parametrize(
    "text",
    ["f1", "accuracy", "balanced_accuracy", "precision@recall=0.9", "recall@precision=0.6"],
)
def test_choice_matches_brute_force(text: str, scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    objective = parse_objective(text)
    choice = choose_threshold(y, p, objective, "validation")
    expected_t, expected_value = brute_force(y, p, objective.goal, objective.constraint)
    assert choice.value == pytest.approx(expected_t)
    assert choice.achieved[objective.goal] == pytest.approx(expected_value)
    if objective.constraint:
        name, bound = objective.constraint
        assert choice.achieved[name] >= bound
    document = choice.to_json()
    assert document["threshold"] == choice.value and document["objective"] == text


def test_parse_objective_rejects_nonsense() -> None:
    for text in ("f2", "precision@precision=0.9", "recall@precision=1.5", "precision@recall"):
        with pytest.raises(UsageError, match="not an objective"):
            parse_objective(text)
    assert parse_objective(" Precision@Recall = 0.9 ").constraint == ("recall", 0.9)


def test_unreachable_precision_fails_with_exit_1(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    y_flipped = 1 - y  # scores now point the wrong way: high precision is impossible
    with pytest.raises(ThresholdUnreachable, match="best precision") as caught:
        choose_threshold(y_flipped, p, parse_objective("recall@precision=0.99"), "validation")
    assert caught.value.exit_code == ExitCode.FAILED
