"""Periodic embeddings of a table's numbers: per-column frequencies, raw rows in, saved whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras
from dltrain.data.prepare import prepare
from dltrain.errors import RecipeError
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec
from dltrain.recipe.models import MlpSpec, NumericEmbeddingSpec
from tests.models.test_builders import image_io


@pytest.fixture(scope="module")
def table_io(tmp_path_factory: pytest.TempPathFactory) -> ModelIO:
    tmp_path = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    num = 120
    pd.DataFrame(
        {
            "lat": rng.uniform(32, 42, num),
            "rooms": rng.integers(1, 9, num).astype(float),
            "coast": rng.choice(["near", "inland"], num),
            "price": rng.normal(100, 20, num),
        }
    ).to_csv(tmp_path / "homes.csv", index=False)
    spec = {"source": tmp_path / "homes.csv", "target": "price"}
    return ModelIO(prepare(DataSpec.model_validate(spec), 1, tmp_path / "data").dataset.manifest)


def rows(num: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "lat": rng.uniform(32, 42, num).astype("float32"),
        "rooms": rng.integers(1, 9, num).astype("float32"),
        "coast": rng.choice(["near", "inland"], num).astype(object),
    }


def test_each_numeric_column_gets_its_own_frequencies_and_embedding(
    table_io: ModelIO, tmp_path: Path
) -> None:
    spec = MlpSpec(units=[8], numeric_embedding=NumericEmbeddingSpec(frequencies=5, dim=3))
    model = build_model(spec, table_io)
    (frequencies,) = model.get_layer("numeric_frequencies").get_weights()
    assert frequencies.shape == (2, 5)  # lat and rooms; the category stays one-hot
    kernel, bias = model.get_layer("numeric_embedding").get_weights()
    assert kernel.shape == (2, 10, 3) and bias.shape == (2, 3)
    (category,) = table_io.manifest.to_json()["preprocessing"]["categorical"]
    # the 2 standardised numbers, 2 columns x 3 embedding values, the category's one-hot block
    width = 2 + 2 * 3 + category["num_tokens"]
    assert model.get_layer("embedded_features").output.shape[-1] == width
    prediction = np.asarray(model.predict(rows(6), verbose=0))
    assert prediction.shape == (6, 1) and np.isfinite(prediction).all()

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(rows(6), verbose=0), prediction, rtol=1e-5)


def test_the_frequencies_set_how_fast_the_embedding_varies(table_io: ModelIO) -> None:
    def wiggle(scale: float) -> float:
        """Mean change of the embedding between neighbouring latitudes."""
        spec = NumericEmbeddingSpec(frequencies=32, dim=4, scale=scale)
        keras.utils.set_random_seed(0)
        model = build_model(MlpSpec(units=[4], numeric_embedding=spec), table_io)
        embed = keras.Model(model.inputs, model.get_layer("numeric_embedding").output)
        lat = np.linspace(32, 42, 200, dtype="float32")
        out = np.asarray(embed.predict({**rows(200), "lat": lat}, verbose=0))[:, 0, :]
        return float(np.abs(np.diff(out, axis=0)).mean())

    assert wiggle(10.0) > 5 * wiggle(0.1)


def test_numeric_embedding_needs_a_table_with_numbers() -> None:
    spec = MlpSpec(units=[4], numeric_embedding=NumericEmbeddingSpec())
    with pytest.raises(RecipeError, match="numeric_embedding.*holds image features"):
        build_model(spec, image_io())
