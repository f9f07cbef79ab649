"""`model.ensemble`: K MLP towers on shared preprocessing, averaged inside one saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.backend import keras
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.models import MlpSpec, NumericEmbeddingSpec
from tests.models.test_numeric_embedding import rows, table_io  # noqa: F401  (fixture)


def test_the_towers_are_independent_and_the_model_outputs_their_mean(
    table_io: ModelIO,  # noqa: F811
    tmp_path: Path,
) -> None:
    spec = MlpSpec(units=[8, 4], ensemble=3, numeric_embedding=NumericEmbeddingSpec(dim=2))
    model = build_model(spec, table_io)
    names = {layer.name for layer in model.layers}
    assert {"numeric_scaling", "ensemble_mean"} <= names  # one preprocessing, one mean
    heads = [model.get_layer(f"tower{k}_target_units") for k in (1, 2, 3)]
    first = [model.get_layer(f"tower{k}_hidden1_1").get_weights()[0] for k in (1, 2, 3)]
    assert not np.allclose(first[0], first[1])  # each tower starts from its own weights
    towers = keras.Model(model.inputs, [h.output for h in heads])
    outputs = [np.asarray(o) for o in towers.predict(rows(5), verbose=0)]
    prediction = np.asarray(model.predict(rows(5), verbose=0))
    assert prediction.shape == (5, 1)
    assert not np.allclose(outputs[0], outputs[1])
    np.testing.assert_allclose(prediction, np.mean(outputs, axis=0), rtol=1e-5)
    # in training each tower's prediction comes out on its own, so each learns from its own loss
    side_by_side = np.asarray(model(rows(5), training=False))
    np.testing.assert_allclose(side_by_side, prediction, rtol=1e-5)
    trained = MlpSpec(units=[8, 4], ensemble=3, numeric_embedding=NumericEmbeddingSpec(dim=2))
    trained = trained.model_copy(update={"dropout": 0.0})  # deterministic training-mode outputs
    model = build_model(trained, table_io)
    towers = keras.Model(
        model.inputs, [model.get_layer(f"tower{k}_target_units").output for k in (1, 2, 3)]
    )
    expected = np.concatenate([np.asarray(o) for o in towers(rows(5), training=True)], axis=-1)
    np.testing.assert_allclose(np.asarray(model(rows(5), training=True)), expected.T, rtol=1e-5)
    prediction = np.asarray(model.predict(rows(5), verbose=0))

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(rows(5), verbose=0), prediction, rtol=1e-5)


def test_each_tower_fits_its_own_error_and_the_model_fits_the_data(
    table_io: ModelIO,  # noqa: F811
) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(MlpSpec(units=[16], ensemble=2, dropout=0.0), table_io)
    towers = keras.Model(
        model.inputs, [model.get_layer(f"tower{k}_target_units").output for k in (1, 2)]
    )
    x = rows(64)
    y = (10 * (x["lat"] - 37) + 100).astype("float32")  # (batch,), as the pipeline gives it
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = float(np.mean((model.predict(x, verbose=0)[:, 0] - y) ** 2))
    loss = model.fit(x, y, epochs=30, batch_size=64, verbose=0).history["loss"][-1]
    each = [float(np.mean((np.asarray(o)[:, 0] - y) ** 2)) for o in towers.predict(x, verbose=0)]
    assert float(np.mean((model.predict(x, verbose=0)[:, 0] - y) ** 2)) < before / 4
    # the training loss is the mean of the towers' own losses, not the mean prediction's loss
    assert loss == pytest.approx(np.mean(each), rel=0.2)
    in_training = np.asarray(keras.losses.MeanSquaredError()(y, model(x, training=True)))
    assert in_training == pytest.approx(np.mean(each), rel=1e-4)
    mean_prediction = float(np.mean((model.predict(x, verbose=0)[:, 0] - y) ** 2))
    assert mean_prediction < np.mean(each)  # the towers differ: their mean beats the average tower


def test_one_tower_is_the_plain_network(table_io: ModelIO) -> None:  # noqa: F811
    model = build_model(MlpSpec(units=[8]), table_io)
    assert "ensemble_mean" not in {layer.name for layer in model.layers}
    assert model.get_layer("target_units") is not None


def test_the_ensemble_size_is_checked() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        MlpSpec(ensemble=0)
    with pytest.raises(ValidationError, match="ensembel"):
        MlpSpec.model_validate({"ensembel": 3})
