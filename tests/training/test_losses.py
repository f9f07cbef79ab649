"""Losses against their formulas computed in NumPy, each trained on tiny data; class weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from sklearn.utils.class_weight import compute_class_weight

from dltrain.backend import keras, tf
from dltrain.data.transforms import class_weights as balanced_weights
from dltrain.errors import RecipeError
from dltrain.manifest import Manifest
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.schema import LossName, LossSpec, Recipe, TrainSpec
from dltrain.tasks import Task
from dltrain.training.compile import class_weights, compile_parts
from dltrain.training.losses import SparseFocalCrossentropy, make_loss
from tests.manifests import manifest_of

PROBS = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25], [0.05, 0.05, 0.9]], dtype="float32"
)
LABELS = np.array([0, 2, 1, 0])


def numpy_focal(
    probs: np.ndarray,
    labels: np.ndarray,
    gamma: float,
    alpha: list[float] | None = None,
    smoothing: float = 0.0,
) -> float:
    """Mean over examples of −Σ_k y_k α_k (1 − p_k)^γ log p_k, y the (smoothed) one-hot."""
    k = probs.shape[1]
    targets = np.eye(k)[labels] * (1 - smoothing) + smoothing / k
    weights = np.ones(k) if alpha is None else np.asarray(alpha)
    per_class = -targets * weights * (1 - probs) ** gamma * np.log(probs)
    return float(per_class.sum(axis=1).mean())


def value(loss: Any, labels: np.ndarray = LABELS, probs: np.ndarray = PROBS) -> float:
    return float(loss(labels, probs))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_multiclass_focal_is_minus_alpha_one_minus_p_to_gamma_log_p(gamma: float) -> None:
    loss = SparseFocalCrossentropy(3, gamma=gamma)
    # On the true class: −(1 − p_c)^γ log p_c, example by example.
    p_true = PROBS[np.arange(4), LABELS]
    direct = float(np.mean(-((1 - p_true) ** gamma) * np.log(p_true)))
    assert value(loss) == pytest.approx(direct, rel=1e-5)
    alpha = [0.2, 0.5, 0.3]
    weighted = SparseFocalCrossentropy(3, gamma=gamma, alpha=alpha)
    assert value(weighted) == pytest.approx(numpy_focal(PROBS, LABELS, gamma, alpha), rel=1e-5)


def test_binary_focal_matches_the_binary_formula_and_keras() -> None:
    p1 = np.array([0.9, 0.2, 0.6, 0.05], dtype="float32")
    labels = np.array([1, 0, 0, 1])
    probs = np.stack([1 - p1, p1], axis=1)
    spec = LossSpec(name="focal", gamma=2.0, alpha=0.25)
    loss = make_loss(spec, Task.BINARY, num_classes=2)
    # −α_t (1 − p_t)^γ log p_t with α_t = α for positives, 1 − α for negatives (Lin et al.).
    p_t = np.where(labels == 1, p1, 1 - p1)
    alpha_t = np.where(labels == 1, 0.25, 0.75)
    direct = float(np.mean(-alpha_t * (1 - p_t) ** 2 * np.log(p_t)))
    assert value(loss, labels, probs) == pytest.approx(direct, rel=1e-5)
    keras_binary = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0
    )
    assert value(loss, labels, probs) == pytest.approx(
        float(keras_binary(labels[:, None].astype("float32"), p1[:, None])), rel=1e-4
    )


def test_label_smoothing_on_integer_labels_matches_keras_on_one_hot() -> None:
    loss = make_loss(LossSpec(label_smoothing=0.1), Task.MULTICLASS, num_classes=3)
    assert value(loss) == pytest.approx(numpy_focal(PROBS, LABELS, 0.0, smoothing=0.1), rel=1e-5)
    keras_dense = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    assert value(loss) == pytest.approx(float(keras_dense(np.eye(3)[LABELS], PROBS)), rel=1e-5)
    focal = make_loss(
        LossSpec(name="focal", gamma=2.0, label_smoothing=0.1), Task.MULTICLASS, num_classes=3
    )
    assert value(focal) == pytest.approx(numpy_focal(PROBS, LABELS, 2.0, smoothing=0.1), rel=1e-5)


def test_gamma_zero_focal_is_cross_entropy_and_labels_may_be_column_vectors() -> None:
    plain = keras.losses.SparseCategoricalCrossentropy()
    assert value(SparseFocalCrossentropy(3, gamma=0.0)) == pytest.approx(value(plain), rel=1e-5)
    assert value(SparseFocalCrossentropy(3), LABELS[:, None]) == pytest.approx(
        value(SparseFocalCrossentropy(3))
    )


def test_focal_loss_round_trips_through_keras_serialization() -> None:
    loss = SparseFocalCrossentropy(3, gamma=1.5, alpha=[1.0, 2.0, 3.0], label_smoothing=0.05)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SparseFocalCrossentropy)
    assert value(again) == pytest.approx(value(loss))


CLASSIFICATION = [
    ({"name": "auto"}, keras.losses.SparseCategoricalCrossentropy),
    ({"name": "sparse_categorical_crossentropy"}, keras.losses.SparseCategoricalCrossentropy),
    ({"name": "categorical_crossentropy"}, keras.losses.SparseCategoricalCrossentropy),
    ({"name": "binary_crossentropy"}, keras.losses.SparseCategoricalCrossentropy),
    ({"name": "categorical_crossentropy", "label_smoothing": 0.1}, SparseFocalCrossentropy),
    ({"name": "focal"}, SparseFocalCrossentropy),
    ({"name": "focal", "gamma": 1.0, "alpha": [0.3, 0.7]}, SparseFocalCrossentropy),
]
REGRESSION = [
    ({"name": "auto"}, keras.losses.MeanSquaredError),
    ({"name": "mse"}, keras.losses.MeanSquaredError),
    ({"name": "mae"}, keras.losses.MeanAbsoluteError),
    ({"name": "huber", "delta": 0.5}, keras.losses.Huber),
]


def train_steps(model: keras.Model, loss: Any, x: np.ndarray, y: np.ndarray, steps: int) -> None:
    optimizer = keras.optimizers.Adam(0.05)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            current = loss(y, model(x))
        optimizer.apply(
            tape.gradient(current, model.trainable_variables), model.trainable_variables
        )


@pytest.mark.parametrize(("section", "cls"), CLASSIFICATION)
def test_each_classification_loss_trains_on_tiny_data(section: dict[str, Any], cls: type) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")  # two separable classes
    loss = make_loss(LossSpec.model_validate(section), Task.BINARY, num_classes=2)
    assert type(loss) is cls
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    before = value(loss, y, model(x))
    train_steps(model, loss, x, y, steps=30)
    assert value(loss, y, model(x)) < 0.7 * before
    assert float(np.mean(np.argmax(model(x), axis=1) == y)) > 0.8


@pytest.mark.parametrize(("section", "cls"), REGRESSION)
def test_each_regression_loss_trains_on_tiny_data(section: dict[str, Any], cls: type) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([1.0, -1.0, 2.0], dtype="float32"))[:, None]
    loss = make_loss(LossSpec.model_validate(section), Task.REGRESSION)
    assert type(loss) is cls
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    before = value(loss, y, model(x))
    train_steps(model, loss, x, y, steps=30)
    assert value(loss, y, model(x)) < 0.7 * before


def test_huber_delta_reaches_keras() -> None:
    loss = make_loss(LossSpec(name="huber", delta=0.5), Task.REGRESSION)
    errors = np.array([[0.2], [3.0]], dtype="float32")
    expected = np.mean([0.5 * 0.2**2, 0.5 * (3.0 - 0.5 * 0.5)])  # quadratic, then linear
    assert value(loss, np.zeros_like(errors), errors) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("section", "task", "classes", "match"),
    [
        ({"name": "mse"}, Task.MULTICLASS, 3, "numeric targets"),
        ({"name": "focal"}, Task.REGRESSION, None, "classification loss"),
        ({"name": "auto", "label_smoothing": 0.1}, Task.REGRESSION, None, "label_smoothing"),
        ({"name": "binary_crossentropy"}, Task.MULTICLASS, 3, "3 classes"),
        ({"name": "focal", "alpha": [0.5, 0.5]}, Task.MULTICLASS, 3, "one weight per class"),
    ],
)
def test_a_loss_that_does_not_fit_the_data_is_a_recipe_error(
    section: dict[str, Any], task: Task, classes: int | None, match: str
) -> None:
    with pytest.raises(RecipeError, match=match):
        make_loss(LossSpec.model_validate(section), task, classes)


@pytest.mark.parametrize(
    "section",
    [{"name": "mse", "gamma": 3.0}, {"name": "focal", "delta": 2.0}, {"name": "mae", "alpha": 0.5}],
)
def test_a_setting_the_loss_ignores_is_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="applies to"):
        LossSpec.model_validate(section)


def test_every_loss_name_is_covered() -> None:
    names = {s["name"] for s, _ in CLASSIFICATION + REGRESSION}
    assert names == {n.value for n in LossName}


def manifest_with_weights(weights: list[float]) -> Manifest:
    target = {"num_classes": 3, "classes": ["cat", "dog", "bird"], "class_weights": weights}
    return manifest_of("multiclass", target=target)


# The weights prepare records for a training split of 60 cats, 30 dogs and 10 birds.
MANIFEST = manifest_with_weights(balanced_weights([60, 30, 10]))


def test_balanced_class_weights_match_scikit_learn() -> None:
    weights = class_weights("balanced", Task.MULTICLASS, MANIFEST)
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert weights is not None
    assert [weights[c] for c in range(3)] == pytest.approx(expected)


def test_balanced_prefers_the_weights_the_dataset_records() -> None:
    recorded = manifest_with_weights([1.0, 2.0, 5.0])
    assert class_weights("balanced", Task.MULTICLASS, recorded) == {0: 1.0, 1: 2.0, 2: 5.0}


def test_class_weights_by_name_or_index_and_their_errors() -> None:
    assert class_weights({"bird": 4.0, "1": 2.0}, Task.MULTICLASS, MANIFEST) == {
        0: 1.0,
        1: 2.0,
        2: 4.0,
    }
    assert class_weights(None, Task.MULTICLASS, MANIFEST) is None
    with pytest.raises(RecipeError, match="cat, dog, bird"):
        class_weights({"horse": 2.0}, Task.MULTICLASS, MANIFEST)
    with pytest.raises(RecipeError, match="no classes to weigh"):
        class_weights("balanced", Task.REGRESSION, MANIFEST)


def test_class_weight_section_checks() -> None:
    assert TrainSpec.model_validate({"class_weight": {0: 2, "dog": 1.5}}).class_weight == {
        "0": 2.0,
        "dog": 1.5,
    }
    for bad in ("balance", {"cat": -1.0}, 3):
        with pytest.raises(ValidationError, match="class_weight"):
            TrainSpec.model_validate({"class_weight": bad})


def test_class_weights_change_what_fit_optimises() -> None:
    """A heavily weighted class pulls the decision its way: weights reach model.fit."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1)).astype("float32")
    y = (x[:, 0] + rng.normal(scale=1.0, size=200) > 0).astype("int32")  # overlapping classes
    manifest = manifest_of("binary", target={"classes": ["0", "1"]})
    predicted_ones = {}
    for weighting in (None, {"1": 20.0}):
        spec = TrainSpec.model_validate({"class_weight": weighting})
        parts = compile_parts(spec, Task.BINARY, manifest, steps_per_epoch=4)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(keras.optimizers.Adam(0.1), parts.loss)
        # One epoch over the data repeated: 40 steps without 40 epochs' overhead.
        xs, ys = np.tile(x, (10, 1)), np.tile(y, 10)
        model.fit(xs, ys, batch_size=50, epochs=1, class_weight=parts.class_weight, verbose=0)
        predicted_ones[str(weighting)] = float(np.mean(np.argmax(model(x), axis=1) == 1))
    assert predicted_ones["{'1': 20.0}"] > predicted_ones["None"] + 0.2


def test_a_resolved_recipe_with_every_optimisation_setting_loads_again(tmp_path: Path) -> None:
    """Run folders keep the resolved recipe, defaults spelled out; resume reloads it."""
    train = {
        "optimizer": {"name": "nesterov", "momentum": 0.8, "gradient_accumulation_steps": 2},
        "lr_schedule": {
            "name": "step",
            "boundaries": [2, 4],
            "warmup_epochs": 0.5,
            "reduce_on_plateau": {"enabled": True, "factor": 0.2},
        },
        "loss": {"name": "focal", "gamma": 1.0, "alpha": [1.0, 2.0, 3.0], "label_smoothing": 0.1},
        "class_weight": {"bird": 2.0, 0: 0.5},
    }
    first = LoadedRecipe(
        Recipe.model_validate({"name": "r", "data": {"source": str(tmp_path)}, "train": train}),
        tmp_path / "r.yaml",
    )
    again = Recipe.model_validate(yaml.safe_load(first.to_yaml()))
    assert again == first.recipe
