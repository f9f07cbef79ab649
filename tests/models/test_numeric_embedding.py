"""Embeddings of a table's numbers, periodic or piecewise linear: per column, raw rows in,
saved whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from dltrain.backend import keras
from dltrain.data.prepare import prepare
from dltrain.data.transforms import QUANTILE_POINTS
from dltrain.errors import RecipeError
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.models.mlp import PiecewiseLinearEncoding, bin_edges
from dltrain.recipe.data import DataSpec
from dltrain.recipe.models import MlpSpec, NumericEmbeddingKind, NumericEmbeddingSpec
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


def test_prepare_keeps_each_columns_quantiles_on_the_scale_the_model_sees(
    table_io: ModelIO,
) -> None:
    lat, rooms = table_io.manifest.preprocessing.numeric  # type: ignore[union-attr]
    assert lat.quantiles is not None and len(lat.quantiles) == QUANTILE_POINTS
    assert lat.quantiles == sorted(lat.quantiles)
    # the ends are the training split's extremes, standardised as Normalization does
    assert lat.train_min is not None and lat.train_max is not None
    scale = np.sqrt(lat.variance)
    assert lat.quantiles[0] == pytest.approx((lat.train_min - lat.mean) / scale, rel=1e-5)
    assert lat.quantiles[-1] == pytest.approx((lat.train_max - lat.mean) / scale, rel=1e-5)
    assert abs(lat.quantiles[QUANTILE_POINTS // 2]) < 0.3  # a uniform column's median: near 0
    assert rooms.quantiles is not None and len(set(rooms.quantiles)) <= 8  # 8 distinct counts


def test_piecewise_linear_bins_sit_at_the_training_quantiles(
    table_io: ModelIO, tmp_path: Path
) -> None:
    embedding = NumericEmbeddingSpec(kind=NumericEmbeddingKind.PIECEWISE_LINEAR, bins=8, dim=3)
    model = build_model(MlpSpec(units=[8], numeric_embedding=embedding), table_io)
    lat_edges, rooms_edges = bin_edges(table_io.manifest.preprocessing.numeric, 8)  # type: ignore[union-attr]
    assert len(lat_edges) == 9  # 8 bins of latitude, each an eighth of the training rows
    assert len(rooms_edges) < 9  # 8 room counts: repeated quantiles merge
    kernel, _ = model.get_layer("numeric_embedding").get_weights()
    assert kernel.shape == (2, 8, 3)  # lat and rooms; the category stays one-hot
    codes = keras.Model(model.inputs, model.get_layer("numeric_bins").output)
    encoded = np.asarray(codes.predict(rows(50), verbose=0))
    lat_code = encoded[:, 0, :]
    # below a row's bin 1, above it 0, inside it its position: the code rises monotonically
    assert (np.diff(lat_code, axis=1) <= 1e-6).all()
    assert ((lat_code[:, 1:-1] >= 0) & (lat_code[:, 1:-1] <= 1)).all()
    prediction = np.asarray(model.predict(rows(6), verbose=0))
    assert np.isfinite(prediction).all()

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(rows(6), verbose=0), prediction, rtol=1e-5)


def test_piecewise_linear_encoding_extends_its_outer_bins() -> None:
    layer = PiecewiseLinearEncoding([[0.0, 1.0, 3.0], [-1.0, 1.0]])
    x = np.array([[2.0, 0.0], [-5.0, 3.0], [5.0, -3.0]], "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)),
        [
            [[1.0, 0.5], [0.5, 0.0]],  # inside bin 2; inside the one bin (the pad reads 0)
            [[-5.0, 0.0], [2.0, 0.0]],  # below the first edge; above the last
            [[1.0, 2.0], [-1.0, 0.0]],
        ],
    )


def test_piecewise_linear_needs_quantiles_from_prepare(table_io: ModelIO) -> None:
    manifest = table_io.manifest
    numeric = [n.model_copy(update={"quantiles": None}) for n in manifest.preprocessing.numeric]  # type: ignore[union-attr]
    with pytest.raises(RecipeError, match="prepare --force"):
        bin_edges(numeric, 8)


def test_a_resolved_recipe_keeps_the_other_kinds_defaults_without_complaint() -> None:
    # a run's recipe.yaml spells out every key, those of the other kind included
    for kind in NumericEmbeddingKind:
        resolved = NumericEmbeddingSpec(kind=kind).model_dump(mode="json")
        assert NumericEmbeddingSpec.model_validate(resolved).kind == kind
    with pytest.raises(ValidationError, match="bins set does nothing for kind: periodic"):
        NumericEmbeddingSpec.model_validate({"kind": "periodic", "bins": 8})
