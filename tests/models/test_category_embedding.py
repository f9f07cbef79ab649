"""Category columns as embeddings: per column or by cardinality, raw strings in, saved whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras
from dltrain.data.prepare import prepare
from dltrain.data.transforms import embedding_width, encode_category
from dltrain.errors import DataError
from dltrain.manifest import CategoricalColumn, Manifest, TablePreprocessing
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import EMBEDDING_THRESHOLD, CategoryEncoding, DataSpec, Missing
from dltrain.recipe.models import MlpSpec

CITIES = [f"city{i:02d}" for i in range(60)]


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table with a 60-value column (city), a 3-value column (coast) and a number."""
    rng = np.random.default_rng(0)
    num = 600
    path = tmp_path_factory.mktemp("homes") / "homes.csv"
    pd.DataFrame(
        {
            "rooms": rng.integers(1, 9, num).astype(float),
            "city": [CITIES[i % len(CITIES)] for i in range(num)],
            "coast": rng.choice(["near", "inland", "island"], num),
            "price": rng.normal(100, 20, num),
        }
    ).to_csv(path, index=False)
    return path


def prepared(path: Path, folder: Path, **data: object) -> Manifest:
    spec = DataSpec.model_validate({"source": path, "target": "price", **data})
    return prepare(spec, 1, folder).dataset.manifest


def categories(manifest: Manifest) -> dict[str, CategoricalColumn]:
    preprocessing = manifest.preprocessing_as(TablePreprocessing)
    return {c.column: c for c in preprocessing.categorical}


def rows(cities: list[str]) -> dict[str, np.ndarray]:
    return {
        "rooms": np.arange(len(cities), dtype="float32"),
        "city": np.asarray(cities, dtype=object),
        "coast": np.asarray(["near"] * len(cities), dtype=object),
    }


def test_auto_embeds_the_wide_column_and_keeps_the_narrow_one_hot(
    homes: Path, tmp_path: Path
) -> None:
    entries = categories(prepared(homes, tmp_path / "data"))
    city, coast = entries["city"], entries["coast"]
    assert city.num_tokens > EMBEDDING_THRESHOLD >= coast.num_tokens
    assert city.encoding == CategoryEncoding.EMBEDDING
    assert city.embedding_dim == embedding_width(city.num_tokens)
    assert coast.encoding == CategoryEncoding.ONE_HOT and coast.embedding_dim is None

    model = build_model(MlpSpec(units=[8]), ModelIO(prepared(homes, tmp_path / "data")))
    layer = model.get_layer("city_embedding")
    assert isinstance(layer, keras.layers.Embedding)
    assert layer.get_weights()[0].shape == (city.num_tokens, city.embedding_dim)
    assert isinstance(model.get_layer("coast_onehot"), keras.layers.CategoryEncoding)
    # the number, the city's vector, the coast's one-hot block
    width = 1 + city.embedding_dim + coast.num_tokens
    assert model.get_layer("features").output.shape[-1] == width
    manifest = prepared(homes, tmp_path / "data")
    assert manifest.features.num_features == width  # what prepare reports


def test_auto_switches_above_the_threshold() -> None:
    def column(num_tokens: int) -> CategoricalColumn:
        vocabulary = [f"v{i}" for i in range(num_tokens - 1)]
        return CategoricalColumn(
            column="c",
            missing=Missing.DROP_ROW,
            vocabulary=vocabulary,
            mapping=list(range(num_tokens)),
            num_tokens=num_tokens,
            out_of_vocabulary=0,
            train_missing=0,
        )

    at = encode_category(column(EMBEDDING_THRESHOLD), CategoryEncoding.AUTO)
    above = encode_category(column(EMBEDDING_THRESHOLD + 1), CategoryEncoding.AUTO)
    assert at.encoding == CategoryEncoding.ONE_HOT and at.embedding_dim is None
    assert above.encoding == CategoryEncoding.EMBEDDING
    assert above.embedding_dim == embedding_width(EMBEDDING_THRESHOLD + 1) == 14
    # an explicit choice wins over the cardinality either way
    assert encode_category(column(3), CategoryEncoding.EMBEDDING, 5).embedding_dim == 5
    forced = encode_category(column(500), CategoryEncoding.ONE_HOT)
    assert forced.encoding == CategoryEncoding.ONE_HOT


def test_embedded_columns_take_raw_strings_after_saving_and_unseen_values_share_row_zero(
    homes: Path, tmp_path: Path
) -> None:
    manifest = prepared(
        homes,
        tmp_path / "data",
        categorical_encoding="one_hot",
        columns={"coast": {"encoding": "embedding", "embedding_dim": 3}},
    )
    entries = categories(manifest)
    assert entries["city"].encoding == CategoryEncoding.ONE_HOT  # the data-wide default
    assert (entries["coast"].encoding, entries["coast"].embedding_dim) == ("embedding", 3)
    model = build_model(MlpSpec(units=[8]), ModelIO(manifest))
    # three values, then the out-of-vocabulary and missing slots, each a row of 3
    assert model.get_layer("coast_embedding").get_weights()[0].shape == (3 + 2, 3)

    batch = rows(["city01", "city02", "city03"])
    batch["coast"] = np.asarray(["near", "atlantis", "mars"], dtype=object)  # two never seen
    before = np.asarray(model.predict(batch, verbose=0))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), before, rtol=1e-6)

    coast = reloaded.get_layer("coast_embedding")
    vectors = np.asarray(keras.Model(reloaded.inputs, coast.output).predict(batch, verbose=0))
    assert vectors.shape == (3, 1, 3)  # one index per row, [batch, 1], each a vector of 3
    vectors = vectors[:, 0]
    table = coast.get_weights()[0]
    np.testing.assert_array_equal(vectors[1], table[0])  # out of vocabulary: index 0
    np.testing.assert_array_equal(vectors[2], table[0])
    assert not np.array_equal(vectors[0], table[0])


def test_an_encoding_on_a_numeric_column_is_refused(homes: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.columns\.rooms.*read as numeric"):
        prepared(homes, tmp_path / "data", columns={"rooms": {"encoding": "embedding"}})


def test_a_width_for_a_one_hot_column_is_refused() -> None:
    with pytest.raises(ValueError, match="embedding_dim sets the width"):
        DataSpec.model_validate(
            {
                "source": "x.csv",
                "columns": {"city": {"encoding": "one_hot", "embedding_dim": 4}},
            }
        )
