"""Transfer learning: backbone input handling, weights files, freezing and unfreezing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.models import build_model
from dltrain.models.transfer import (
    BACKBONE_LAYER,
    TransferTraining,
    discriminative_factors,
    unfreeze,
    use_discriminative_rates,
)
from dltrain.recipe.models import TransferSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.tasks import Task
from dltrain.training.compile import compile_parts
from tests.models.test_builders import image_io

SMALL = {"image_size": 32, "dense": [8]}


def test_grayscale_raw_pixels_in_probabilities_out() -> None:
    model = build_model(TransferSpec(**SMALL), image_io())
    images = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8)
    probabilities = np.asarray(model(images))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer(BACKBONE_LAYER).input_shape[1:] == (32, 32, 3)
    assert model.get_layer(BACKBONE_LAYER).trainable is False  # frozen while freeze_epochs > 0


def test_augmentation_acts_on_the_raw_image_in_training_only() -> None:
    augmentation = {"flip": "horizontal", "crop": {"padding": 2}, "mixup": {"alpha": 0.2}}
    augmented = build_model(TransferSpec(**SMALL, augmentation=augmentation), image_io())
    plain = build_model(TransferSpec(**SMALL), image_io())
    names = [layer.name for layer in augmented.layers]
    assert names.index("augment_flip") < names.index("augment_crop") < names.index("resize")
    plain.set_weights(augmented.get_weights())  # the augmentation layers hold no weights
    images = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(augmented.predict(images, verbose=0), plain(images), rtol=1e-5)
    resized = keras.Model(augmented.input, augmented.get_layer("resize").output)
    as_is = keras.layers.Resizing(32, 32)(images.astype("float32"))
    np.testing.assert_allclose(resized(images, training=False), as_is, rtol=1e-6)  # idle
    assert not np.allclose(resized(images, training=True), as_is)  # in training
    # MixUp blends the training batches, as a CNN's (models/mixing.py)
    assert TransferTraining(TransferSpec(augmentation=augmentation)).soft_labels
    assert not TransferTraining(TransferSpec(**SMALL)).soft_labels


def test_unfreezing_opens_the_top_layers_but_not_batch_norm() -> None:
    spec = TransferSpec(**SMALL, fine_tune_layers=10)
    model = build_model(spec, image_io())
    head_only = {id(w) for w in model.trainable_weights}
    backbone = model.get_layer(BACKBONE_LAYER)
    assert head_only.isdisjoint(id(w) for w in backbone.weights)
    assert unfreeze(model, spec) == 10
    opened = {id(w) for w in model.trainable_weights} - head_only
    top = backbone.layers[-10:]
    expected = {
        id(w)
        for layer in top
        if not isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.trainable_weights
    }
    assert opened == expected and expected
    lower = {id(w) for layer in backbone.layers[:-10] for w in layer.weights}
    assert opened.isdisjoint(lower)


def test_weights_file_round_trip_and_errors(tmp_path: Path) -> None:
    model = build_model(TransferSpec(**SMALL), image_io())
    path = tmp_path / "backbone.weights.h5"
    model.get_layer(BACKBONE_LAYER).save_weights(path)
    again = build_model(TransferSpec(**SMALL, weights=path), image_io())
    for a, b in zip(
        model.get_layer(BACKBONE_LAYER).get_weights(),
        again.get_layer(BACKBONE_LAYER).get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RecipeError, match="does not exist"):
        build_model(TransferSpec(**SMALL, weights=tmp_path / "nope.h5"), image_io())
    with pytest.raises(RecipeError, match="does not fit"):
        build_model(
            TransferSpec(**{**SMALL, "backbone": "efficientnet_b0"}, weights=path), image_io()
        )


def test_a_run_resumed_while_fine_tuning_compiles_at_the_fine_tuning_rate() -> None:
    hooks = TransferTraining(TransferSpec(**SMALL, freeze_epochs=2, fine_tune_learning_rate=0.1))
    train = TrainSpec(epochs=5, optimizer={"learning_rate": 0.01})
    frozen, fine = hooks.phases(train, initial_epoch=0)
    assert (frozen.end, fine.end) == (2, 5) and fine.prepare is not None
    # resumed past the freeze: one phase, from a checkpoint that is unfrozen already
    (resumed,) = hooks.phases(train, initial_epoch=3)
    assert resumed.end == 5 and resumed.prepare is None
    assert resumed.train.optimizer.learning_rate == pytest.approx(0.001)
    assert fine.train.optimizer.learning_rate == pytest.approx(0.001)


def test_discriminative_rates_rise_geometrically_through_the_backbone() -> None:
    model = build_model(TransferSpec(**SMALL, freeze_epochs=0), image_io())
    factors = discriminative_factors(model, 0.01)
    layers = [layer for layer in model.get_layer(BACKBONE_LAYER).layers if layer.weights]
    by_layer = [factors[id(layer.weights[0])] for layer in layers]
    assert by_layer[0] == pytest.approx(0.01) and by_layer[-1] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(by_layer, by_layer[1:], strict=False))
    ratios = [b / a for a, b in zip(by_layer, by_layer[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))  # geometric
    head = model.get_layer("dense_0") if "dense_0" in [x.name for x in model.layers] else None
    backbone = {id(w) for w in model.get_layer(BACKBONE_LAYER).weights}
    assert set(factors) == backbone and (head is None or id(head.kernel) not in factors)


def test_each_group_steps_at_its_multiple_of_the_rate_with_adam() -> None:
    """Adam's step does not scale with its gradient; the rate must be scaled, and is."""
    rng = np.random.default_rng(0)
    low = [keras.Variable(rng.normal(size=(3, 2)).astype("float32")) for _ in range(2)]
    high = [keras.Variable(rng.normal(size=(2,)).astype("float32"))]
    grouped = keras.optimizers.Adam(0.01)
    use_discriminative_rates(grouped, {id(v): 0.1 for v in low})
    grouped.build([*low, *high])
    # the same variables, stepped by two plain Adams at 0.001 and 0.01
    low_copy = [keras.Variable(np.array(v)) for v in low]
    high_copy = [keras.Variable(np.array(v)) for v in high]
    slow, fast = keras.optimizers.Adam(0.001), keras.optimizers.Adam(0.01)
    slow.build(low_copy)
    fast.build(high_copy)
    for _ in range(3):
        grads = [rng.normal(size=v.shape).astype("float32") for v in (*low, *high)]
        grouped.apply(grads, [*low, *high])
        slow.apply(grads[:2], low_copy)
        fast.apply(grads[2:], high_copy)
    for a, b in zip([*low, *high], [*low_copy, *high_copy], strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6)
    assert not np.allclose(np.array(low[0]), np.array(keras.Variable(np.zeros(1))))


def first_step(spec: TransferSpec, weights: list[np.ndarray] | None) -> list[np.ndarray]:
    """How far one SGD step (rate 0.1) moves each trainable variable, from ``weights``."""
    model = build_model(spec, image_io())
    if weights is not None:
        model.set_weights(weights)
    train = TrainSpec(optimizer={"name": "sgd", "learning_rate": 0.1})
    parts = compile_parts(train, Task.MULTICLASS, image_io().manifest, steps_per_epoch=1)
    TransferTraining(spec).compile(model, parts, train)
    before = [np.array(v) for v in model.trainable_weights]
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(4, 28, 28, 1)).astype("uint8")
    model.train_on_batch(x, np.array([0, 1, 2, 3]))
    return [b - np.array(v) for b, v in zip(before, model.trainable_weights, strict=True)]


def test_the_fine_tune_compile_steps_each_layer_at_its_multiple_of_the_rate() -> None:
    plain = TransferSpec(**SMALL, freeze_epochs=0, dropout=0.0)
    model = build_model(plain, image_io())
    weights = model.get_weights()
    factors = discriminative_factors(model, 0.01)
    expected = [factors.get(id(v), 1.0) for v in model.trainable_weights]
    one_rate = first_step(plain, weights)
    discriminative = first_step(plain.model_copy(update={"discriminative_lr": 0.01}), weights)
    assert min(expected) == pytest.approx(0.01) and max(expected) == 1.0
    for factor, a, b in zip(expected, discriminative, one_rate, strict=True):
        np.testing.assert_allclose(a, factor * b, rtol=1e-3, atol=1e-6)


def test_one_cycle_runs_one_cycle_per_phase() -> None:
    hooks = TransferTraining(TransferSpec(**SMALL, freeze_epochs=2))
    train = TrainSpec(epochs=6, lr_schedule={"name": "one_cycle"})
    frozen, fine = hooks.phases(train, initial_epoch=0)
    assert (frozen.train.epochs, fine.train.epochs) == (2, 4)
    (resumed,) = hooks.phases(train, initial_epoch=3)
    assert resumed.train.epochs == 4
    cosine = TrainSpec(epochs=6, lr_schedule={"name": "cosine"})
    assert [p.train.epochs for p in hooks.phases(cosine, 0)] == [6, 6]  # as before


def test_swa_is_refused_across_the_two_phases() -> None:
    hooks = TransferTraining(TransferSpec(**SMALL, freeze_epochs=2))
    assert hooks.averaging_reason(TrainSpec(epochs=6, swa={"enabled": True})) is not None
    assert hooks.averaging_reason(TrainSpec(epochs=6, optimizer={"ema": {"enabled": True}})) is None
    single = TransferTraining(TransferSpec(**SMALL, freeze_epochs=0))
    assert single.averaging_reason(TrainSpec(epochs=6, swa={"enabled": True})) is None
