"""Transfer learning: backbone input handling, weights files, freezing and unfreezing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.models import build_model
from dltrain.models.transfer import BACKBONE_LAYER, TransferTraining, unfreeze
from dltrain.recipe.models import TransferSpec
from dltrain.recipe.schema import TrainSpec
from tests.models.test_builders import image_io

SMALL = {"image_size": 32, "dense": [8]}


def test_grayscale_raw_pixels_in_probabilities_out() -> None:
    model = build_model(TransferSpec(**SMALL), image_io())
    images = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8)
    probabilities = np.asarray(model(images))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer(BACKBONE_LAYER).input_shape[1:] == (32, 32, 3)
    assert model.get_layer(BACKBONE_LAYER).trainable is False  # frozen while freeze_epochs > 0


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
