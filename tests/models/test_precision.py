"""Mixed precision leaves raw numbers to float32 until they are scaled."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras
from dltrain.data.prepare import prepare
from dltrain.manifest import Manifest
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec
from dltrain.recipe.models import MlpSpec


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """A table whose `weight` column runs far past float16's largest value (65,504)."""
    folder = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"weight": rng.uniform(100_000, 1_500_000, 120), "age": rng.uniform(18, 90, 120)}
    )
    table["label"] = (table["weight"] > 800_000).astype(int)
    table.to_csv(folder / "people.csv", index=False)
    spec = DataSpec.model_validate({"source": folder / "people.csv", "target": "label"})
    return prepare(spec, 1, folder / "data").dataset.manifest


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def policy(request: pytest.FixtureRequest) -> Iterator[str]:
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def test_raw_numbers_are_scaled_in_float32_under_mixed_precision(
    manifest: Manifest, policy: str
) -> None:
    model = build_model(MlpSpec(units=[4], dropout=0.0), ModelIO(manifest))
    assert model.get_layer("hidden1_1").compute_dtype != "float32"  # the network is mixed
    scaling = model.get_layer("numeric_scaling")
    rows = {"weight": np.array([1_400_000.0, 120_000.0]), "age": np.array([30.0, 70.0])}
    rows = {k: v.astype("float32") for k, v in rows.items()}
    scaled = np.asarray(keras.Model(model.inputs, scaling.output)(rows))
    mean, variance = (np.asarray(v).reshape(-1) for v in (scaling.mean, scaling.variance))
    expected = (np.stack([rows["weight"], rows["age"]], axis=1) - mean) / np.sqrt(variance)
    # in float16 1.4 million is inf; in bfloat16 it is off by up to 4,096
    np.testing.assert_allclose(scaled, expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(np.asarray(model.predict(rows, verbose=0))).all()
