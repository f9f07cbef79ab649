"""Every metric against an independent computation (scikit-learn) on fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from dltrain.evaluation.metrics import classification_metrics

CLASSES = ["a", "b", "c", "d"]


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, size=200)
    y_true[:3] = 0  # class d may be rare; make sure it never gets predicted below
    logits = rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[y_true]
    logits[:, 3] -= 10  # class "d" is never predicted: precision must be 0, not NaN
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probabilities


def test_against_scikit_learn(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, probabilities = predictions
    y_pred = probabilities.argmax(axis=1)
    result = classification_metrics(y_true, probabilities, CLASSES)
    m = result["metrics"]
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["loss"] == pytest.approx(
        sk.log_loss(y_true, probabilities, labels=[0, 1, 2, 3]), rel=1e-6
    )
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(
            y_true, y_pred, average=average, labels=[0, 1, 2, 3], zero_division=0
        )
        assert m[f"precision_{average}"] == pytest.approx(p)
        assert m[f"recall_{average}"] == pytest.approx(r)
        assert m[f"f1_{average}"] == pytest.approx(f)
    p, r, f, s = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2, 3], zero_division=0
    )
    for i, row in enumerate(result["per_class"]):
        assert row["class"] == CLASSES[i]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i])
        )
    assert (
        result["confusion_matrix"]["counts"]
        == sk.confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3]).tolist()
    )
    assert result["per_class"][3]["precision"] == 0.0


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 2, 1])
    result = classification_metrics(y, np.eye(3)[y], ["x", "y", "z"])
    assert result["metrics"]["accuracy"] == 1.0 and result["metrics"]["f1_macro"] == 1.0
    assert result["metrics"]["loss"] == pytest.approx(-np.log(1 - 1e-7))
