"""The model carries prepare's preprocessing: raw rows in, the same predictions as prepared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras, tf
from dltrain.data.pipeline import make_dataset
from dltrain.data.prepare import prepare
from dltrain.manifest import TextPreprocessing
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec
from dltrain.recipe.models import MlpSpec
from tests.manifests import manifest_of


def raw_rows(path: Path, numeric: list[str]) -> pd.DataFrame:
    """The CSV as a user would load it: numbers with NaN for empty cells, text untouched."""
    return pd.read_csv(path, keep_default_na=False, na_values={n: [""] for n in numeric})


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(0)
    num = 240
    frame = pd.DataFrame(
        {
            "key": [f"k{i:04d}" for i in range(num)],
            "size": np.round(rng.lognormal(3, 1, num), 3),
            "rooms": rng.integers(1, 9, num).astype(float),
            "city": rng.choice(["paris", "lyon", "nice", "?"], num),
            "price": rng.normal(100, 20, num),
        }
    )
    frame.loc[::9, "size"] = np.nan
    frame.loc[5, "city"] = "brest"  # a city seen once: it may land outside the training split
    path = tmp_path / "homes.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_raw_rows_predict_like_prepared_rows_and_survive_saving(
    table: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, _ = table
    spec = DataSpec.model_validate(
        {
            "source": path,
            "target": "price",
            "columns": {
                "size": {"scaling": "log", "outliers": "zscore"},
                "key": {"type": "identifier"},
            },
        }
    )
    dataset = prepare(spec, 1, tmp_path / "data").dataset
    model = build_model(MlpSpec(units=[8]), ModelIO(dataset.manifest))
    x, y = dataset.load_split("test")
    prepared = model.predict(
        make_dataset(x, y, 16, shuffle=False, seed=0).map(lambda f, _: f), verbose=0
    )

    raw = raw_rows(path, ["size", "rooms", "price"]).set_index("key").loc[x["key"]].reset_index()
    columns = {
        "key": raw["key"].to_numpy(object),
        "size": raw["size"].to_numpy(np.float32),
        "rooms": raw["rooms"].to_numpy(np.float32),
        "city": raw["city"].to_numpy(object),
    }
    assert np.isnan(columns["size"]).any()  # the test split holds missing values
    from_raw = model.predict(tf.data.Dataset.from_tensor_slices(columns).batch(16), verbose=0)
    np.testing.assert_allclose(from_raw, prepared, rtol=1e-6)

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    again = reloaded.predict(tf.data.Dataset.from_tensor_slices(columns).batch(16), verbose=0)
    np.testing.assert_allclose(again, prepared, rtol=1e-6)


def test_encoded_row_is_the_fitted_preprocessing(
    table: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, _ = table
    spec = DataSpec.model_validate(
        {"source": path, "target": "price", "columns": {"key": {"type": "ignore"}}}
    )
    manifest = prepare(spec, 1, tmp_path / "data").dataset.manifest
    raw, encoded = ModelIO(manifest).inputs()
    encoder = keras.Model(raw, encoded)
    rows = {
        "key": tf.constant(["a", "b"]),
        "size": tf.constant([np.nan, 10.0], tf.float32),
        "rooms": tf.constant([2.0, 3.0]),
        "city": tf.constant(["atlantis", "?"]),
    }
    out = np.asarray(encoder(rows))
    size = next(n for n in manifest.to_json()["preprocessing"]["numeric"] if n["column"] == "size")
    expected = (size["fill"] - size["mean"]) / np.sqrt(size["variance"])
    assert out[0, 0] == pytest.approx(expected, rel=1e-5)  # a missing size gets the train median
    city = manifest.to_json()["preprocessing"]["categorical"][0]
    one_hot = out[:, 2:]
    assert one_hot.shape[1] == city["num_tokens"]
    assert one_hot[0].argmax() == 0  # an unseen city: the out-of-vocabulary bucket
    assert one_hot[1].argmax() == city["mapping"][city["vocabulary"].index("?") + 1]


def test_text_and_window_inputs(tmp_path: Path) -> None:
    texts = pd.DataFrame(
        {
            "label": ["spam", "ham"] * 30,
            "message": [
                m
                for i in range(30)
                for m in (f"WIN a FREE prize now, call 0800{i}!", f"see you at lunch on day {i}")
            ],
        }
    )
    texts.to_csv(tmp_path / "sms.tsv", sep="\t", index=False, header=False)
    spec = DataSpec.model_validate(
        {"source": tmp_path / "sms.tsv", "target": "column_1", "text": {"sequence_length": 6}}
    )
    manifest = prepare(spec, 1, tmp_path / "text").dataset.manifest
    assert manifest.features.kind == "text"
    raw, tokens = ModelIO(manifest).inputs()
    ids = np.asarray(keras.Model(raw, tokens)(tf.constant(["Win a FREE lunch!"])))
    vocabulary = ["", "[UNK]", *manifest.preprocessing_as(TextPreprocessing).vocabulary]
    assert [vocabulary[i] for i in ids[0]] == ["win", "a", "free", "lunch", "", ""]

    manifest = manifest_of(
        "forecasting",
        features={"kind": "sequence", "shape": [3, 2]},
        target={"mean": [0.0], "horizon": 1},
        preprocessing={"mean": [1.0, 10.0], "variance": [4.0, 25.0]},
    )
    raw, scaled = ModelIO(manifest).inputs()
    window = np.array([[[1.0, 10.0], [3.0, 15.0], [5.0, 20.0]]], np.float32)
    np.testing.assert_allclose(np.asarray(keras.Model(raw, scaled)(window))[0, :, 1], [0, 1, 2])
