"""Model builders: shapes, the in-model scaling, and the reference script's exact network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.errors import DataError, RecipeError
from dltrain.manifest import parse_manifest
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.models import CnnSpec, MlpSpec
from tests.manifests import manifest_of


def image_io(
    shape: tuple[int, ...] = (28, 28, 1), scale: float = 1 / 255, offset: float = 0.0
) -> ModelIO:
    manifest = manifest_of(
        "multiclass",
        features={"kind": "image", "shape": list(shape), "dtype": "uint8"},
        target={"classes": [str(i) for i in range(10)], "num_classes": 10},
        preprocessing={"scaling": "unit", "scale": scale, "offset": offset},
    )
    return ModelIO(manifest)


def test_reference_network_has_the_reference_parameter_count() -> None:
    # Conv32-pool-Conv64-pool-Dense64-Dropout-Dense10 on 28x28 ("valid" padding):
    # 320 + 18,496 + (5*5*64*64 + 64) + 650 = 121,930 parameters.
    spec = CnnSpec(filters=[32, 64], padding="valid", dense=[64], dropout=0.5)
    model = build_model(spec, image_io())
    assert model.count_params() == 121_930
    assert [layer.name for layer in model.layers if "dropout" in layer.name] == ["dropout"]


@pytest.mark.parametrize(
    "spec",
    [
        CnnSpec(filters=[8, 16], batch_norm=True, convs_per_block=2, block_dropout=0.2),
        CnnSpec(filters=[4], activation="leaky_relu"),
        MlpSpec(units=[16, 8], batch_norm=True, activation="gelu"),
        MlpSpec(units=[4], dropout=0.0, activation="tanh"),
    ],
    ids=["cnn-bn", "cnn-leaky", "mlp-bn", "mlp-tanh"],
)
def test_builders_give_class_probabilities_for_raw_pixels(spec: CnnSpec | MlpSpec) -> None:
    model = build_model(spec, image_io())
    raw = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    probabilities = np.asarray(model(raw, training=False))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_scaling_is_the_models_first_step() -> None:
    model = build_model(MlpSpec(units=[4]), image_io(shape=(2, 1, 1), scale=0.5, offset=-1))
    scaled = model.get_layer("scaling")(np.array([[[[0]], [[4]]]], dtype=np.uint8))
    np.testing.assert_allclose(np.asarray(scaled).ravel(), [-1.0, 1.0])


def test_family_that_cannot_read_the_data_is_refused() -> None:
    io = ModelIO(manifest_of("multiclass", features={"kind": "table"}))
    with pytest.raises(RecipeError, match="Model family 'cnn' takes images"):
        build_model(CnnSpec(), io)


def table_like_io(task: str, target: dict[str, Any]) -> ModelIO:
    # An image-shaped input stands in for any features: the head does not care what came before.
    return ModelIO(
        manifest_of(
            task,
            features={"kind": "image", "shape": [4, 1, 1], "dtype": "uint8"},
            target=target,
        )
    )


def test_regression_head_outputs_target_units() -> None:
    io = table_like_io("regression", {"columns": ["price"], "mean": [200_000.0], "std": [50_000.0]})
    model = build_model(MlpSpec(units=[3]), io)
    standardized = model.get_layer("standardized")
    kernel, bias = standardized.get_weights()
    standardized.set_weights([np.zeros_like(kernel), np.array([1.5], dtype="float32")])
    prediction = np.asarray(model(np.zeros((2, 4, 1, 1), dtype=np.uint8)))
    np.testing.assert_allclose(prediction, [[275_000.0], [275_000.0]])  # mean + 1.5 std


def test_forecasting_head_outputs_horizon_by_targets() -> None:
    target = {"columns": ["a", "b"], "horizon": 3, "mean": [10.0, -5.0], "std": [2.0, 1.0]}
    model = build_model(MlpSpec(units=[3]), table_like_io("forecasting", target))
    standardized = model.get_layer("standardized")
    kernel, bias = standardized.get_weights()
    standardized.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    prediction = np.asarray(model(np.zeros((1, 4, 1, 1), dtype=np.uint8)))
    assert prediction.shape == (1, 3, 2)
    np.testing.assert_allclose(prediction[0], [[10.0, -5.0]] * 3)  # zero standardised = the mean


def test_clip_to_target_range_keeps_predictions_inside_the_training_range(tmp_path: Any) -> None:
    target = {"columns": ["a", "b"], "horizon": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0]}
    target |= {"min": [-1.0, 0.0], "max": [1.0, 5.0]}
    spec = MlpSpec(units=[3], clip_to_target_range=True)
    model = build_model(spec, table_like_io("forecasting", target))
    standardized = model.get_layer("standardized")
    kernel, bias = standardized.get_weights()
    # standardised outputs far outside the range on both sides, and one inside it
    standardized.set_weights([np.zeros_like(kernel), np.array([9, -9, -9, 2], dtype="float32")])
    zeros = np.zeros((1, 4, 1, 1), dtype=np.uint8)
    expected = [[[1.0, 0.0], [-1.0, 2.0]]]  # each column clipped to its own range
    np.testing.assert_allclose(model.predict(zeros, verbose=0), expected)
    # training sees the raw outputs: an overshoot on a capped row still has a gradient
    np.testing.assert_allclose(model(zeros, training=True), [[[9.0, -9.0], [-9.0, 2.0]]])
    model.save(tmp_path / "m.keras")  # the clip is part of the saved model
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(zeros, verbose=0), expected)


def test_clip_to_target_range_keeps_float32_under_mixed_precision() -> None:
    target = {"columns": ["price"], "mean": [200_000.0], "std": [100_000.0]}
    target |= {"min": [15_000.0], "max": [500_001.0]}
    spec = MlpSpec(units=[3], clip_to_target_range=True)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(spec, table_like_io("regression", target))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    standardized = model.get_layer("standardized")
    kernel, _ = standardized.get_weights()
    standardized.set_weights([np.zeros_like(kernel), np.array([2.9], dtype="float32")])
    prediction = model.predict(np.zeros((1, 4, 1, 1), dtype=np.uint8), verbose=0)
    # float16 holds nothing above 65,504: $490,000 would become inf, then the cap
    assert prediction.dtype == np.float32
    np.testing.assert_allclose(prediction, [[490_000.0]], rtol=1e-6)


def test_clip_to_target_range_is_refused_where_it_cannot_apply() -> None:
    spec = MlpSpec(units=[3], clip_to_target_range=True)
    with pytest.raises(RecipeError, match="task is multiclass. Remove it"):
        build_model(spec, image_io())
    # A manifest written before prepare recorded the target's range is refused when read.
    old = table_like_io("regression", {"columns": ["y"], "mean": [0.0]}).manifest.to_json()
    del old["target"]["min"], old["target"]["max"]
    with pytest.raises(DataError, match="prepare --force"):
        parse_manifest(old, Path("manifest.json"))
