"""Derived numeric columns: fitted on the training split by prepare, recomputed inside the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras
from dltrain.data.prepare import prepare
from dltrain.errors import DataError
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec
from dltrain.recipe.models import MlpSpec
from tests.conftest import invoke


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    num = 200
    frame = pd.DataFrame(
        {
            "rooms": rng.integers(2, 12, num).astype(float),
            "households": rng.integers(0, 4, num).astype(float),  # zeros: division by zero
            "bedrooms": rng.integers(1, 4, num).astype(float),
            "coast": rng.choice(["near", "inland"], num),
            "price": rng.normal(100, 20, num),
        }
    )
    frame.loc[::7, "bedrooms"] = np.nan
    path = tmp_path / "homes.csv"
    frame.to_csv(path, index=False)
    return path


def spec_for(path: Path, **extra: object) -> DataSpec:
    derived = {"per_household": "rooms / households", "share": "(bedrooms + 1) / (rooms * 2)"}
    return DataSpec.model_validate({"source": path, "target": "price", "derived": derived, **extra})


def encoded_numbers(model: keras.Model, frame: pd.DataFrame) -> np.ndarray:
    features = keras.Model(model.inputs, model.get_layer("numeric_scaling").output)
    rows = {c: frame[c].to_numpy("float32") for c in ("rooms", "households", "bedrooms")}
    rows["coast"] = frame["coast"].to_numpy(object)
    return np.asarray(features.predict(rows, verbose=0))


def test_derived_columns_are_fitted_on_train_and_recomputed_from_raw_rows(
    homes: Path, tmp_path: Path
) -> None:
    spec = spec_for(homes, columns={"per_household": {"scaling": "log", "missing": "median"}})
    dataset = prepare(spec, 1, tmp_path / "data").dataset
    manifest = dataset.manifest.to_json()
    numeric = {n["column"]: n for n in manifest["preprocessing"]["numeric"]}
    assert list(numeric)[-2:] == ["per_household", "share"]
    assert numeric["share"]["expression"] == "(bedrooms + 1) / (rooms * 2)"
    # the raw inputs are still the source's columns: the model takes raw rows
    assert [c["name"] for c in manifest["features"]["columns"]] == [
        "rooms",
        "households",
        "bedrooms",
        "coast",
    ]
    train = pd.read_feather(next(dataset.folder.glob("train-*.arrow")))
    share = (train["bedrooms"] + 1) / (train["rooms"] * 2)
    assert numeric["share"]["train_missing"] == int(share.isna().sum()) > 0
    assert numeric["share"]["mean"] == pytest.approx(share.fillna(share.median()).mean(), rel=1e-4)
    per_household = train["rooms"] / train["households"]
    per_household = per_household.where(np.isfinite(per_household))  # x / 0: missing
    assert numeric["per_household"]["train_missing"] == int((train["households"] == 0).sum()) > 0
    assert numeric["per_household"]["log"] and numeric["per_household"]["fill"] == pytest.approx(
        per_household.median(), rel=1e-5
    )

    model = build_model(MlpSpec(units=[4]), ModelIO(dataset.manifest))
    frame = pd.read_csv(homes)
    encoded = encoded_numbers(model, frame)
    expected_share = (frame["bedrooms"] + 1) / (frame["rooms"] * 2)
    expected_share = expected_share.fillna(numeric["share"]["fill"]).to_numpy()
    standardised = (expected_share - numeric["share"]["mean"]) / np.sqrt(
        numeric["share"]["variance"]
    )
    np.testing.assert_allclose(encoded[:, -1], standardised, rtol=1e-4, atol=1e-4)
    zero = (frame["households"] == 0).to_numpy()
    fill = np.log1p(numeric["per_household"]["fill"] - numeric["per_household"]["shift"])
    expected_fill = (fill - numeric["per_household"]["mean"]) / np.sqrt(
        numeric["per_household"]["variance"]
    )
    np.testing.assert_allclose(encoded[zero, -2], expected_fill, rtol=1e-4)
    assert np.isfinite(encoded).all()

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(encoded_numbers(reloaded, frame), encoded, rtol=1e-6)


def test_derived_columns_must_read_numeric_feature_columns(homes: Path, tmp_path: Path) -> None:
    cases = {
        "rooms / houshold": "does not have. Did you mean 'households'",
        "rooms / coast": "not a numeric feature column",
        "price / rooms": "reads the target 'price'",
    }
    for expression, needle in cases.items():
        spec = DataSpec.model_validate(
            {"source": homes, "target": "price", "derived": {"x": expression}}
        )
        with pytest.raises(DataError, match=needle):
            prepare(spec, 1, tmp_path / "data")
    spec = DataSpec.model_validate(
        {"source": homes, "target": "price", "derived": {"rooms": "bedrooms / 2"}}
    )
    with pytest.raises(DataError, match="would replace the source column 'rooms'"):
        prepare(spec, 1, tmp_path / "data")


def test_prepare_refuses_a_bad_derived_column_with_exit_2(
    homes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "dltrain.yaml"
    recipe.write_text(
        f"name: homes\ndata:\n  source: {homes}\n  target: price\n"
        f"  derived:\n    x: rooms ** 2\nmodel: {{family: mlp}}\n"
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("prepare")
    assert code == 2, err
    assert "'**'" in err and "Traceback" not in err
    recipe.write_text(recipe.read_text().replace("rooms ** 2", "rooms / housholds"))
    code, _, err = invoke("prepare")
    assert code == 2, err
    assert "Did you mean 'households'" in err and "Traceback" not in err
