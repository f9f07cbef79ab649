"""A table whose column names Keras would not take ("Sale Price/m2", "type (code)"): no warning
spam from prepare to export, the user's names in and out, the mapping in the manifest and in
export/metadata.json."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import invoke, run_dltrain

# Besides the awkward spellings, "maximum" is the name Keras gives the clipping op and
# "features" the one dltrain gives its concatenation: a model's names must all differ.
COLUMNS = {
    "Sale Price/m2": "Sale_Price_m2",
    "type (code)": "type_code",
    "rooms #": "rooms",
    "maximum": "maximum",
    "features": "column_features",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    price = rng.normal(100, 10, 120)
    lines = ["Sale Price/m2,type (code),rooms #,maximum,features,expensive"]
    for i, p in enumerate(price):
        extra = f"{rng.normal():.3f},{rng.normal():.3f}"
        lines.append(f"{p:.2f},{'abc'[i % 3]},{1 + i % 4},{extra},{int(p > 100)}")
    (tmp_path / "homes.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "new.csv").write_text("\n".join(lines[:6]) + "\n")
    recipe = {
        "name": "homes",
        "seed": 3,
        "data": {"source": "homes.csv", "target": "expensive", "split": {"validation": 0.2}},
        "model": {"family": "mlp", "units": [8]},
        "train": {"epochs": 1, "batch_size": 32},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def keras_user_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Keras's UserWarnings (its inputs' names against their keys); not the DeprecationWarnings
    Keras's own internals draw from NumPy, which Python hides by default."""
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and "keras" in w.filename
    ]


def test_awkward_column_names_draw_no_keras_warning_and_the_mapping_is_recorded(
    project: Path,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for command in (
            ["prepare"],
            ["train"],
            ["evaluate"],
            ["predict", "--input", "new.csv", "--output", "out.csv"],
            ["export"],
        ):
            code, _, err = invoke(*command)
            assert code == 0, (command, err)
    assert keras_user_warnings(caught) == []

    manifest = json.loads((project / "data/homes/manifest.json").read_text())
    recorded = {c["name"]: c["input_name"] for c in manifest["features"]["columns"]}
    assert recorded == COLUMNS
    assert len((project / "out.csv").read_text().splitlines()) == 6  # header + 5 rows

    (run,) = (project / "runs/homes").iterdir()
    metadata = json.loads((run / "export/metadata.json").read_text())
    assert metadata["input_names"] == COLUMNS
    assert sorted(i["name"] for i in metadata["inputs"]) == sorted(COLUMNS.values())

    # A server feeds the SavedModel by the recorded names, with no dltrain in between.
    from dltrain.backend import keras, tf

    served = tf.saved_model.load(str(run / "export/saved_model"))
    row = {
        "Sale_Price_m2": [120.0],
        "type_code": ["a"],
        "rooms": [2.0],
        "maximum": [0.5],
        "column_features": [-0.5],
    }
    tensors = {k: tf.constant(v) for k, v in row.items()}
    model = keras.models.load_model(run / "model.keras", compile=False)
    np.testing.assert_allclose(
        np.asarray(served.serve(tensors)), model.predict_on_batch(tensors), atol=1e-6
    )


@pytest.mark.slow  # three TensorFlow start-ups, as a user's shell runs them
def test_no_user_warning_reaches_the_shell(project: Path) -> None:
    for command in (
        ["prepare"],
        ["train"],
        ["predict", "--input", "new.csv", "--output", "out.csv"],
    ):
        done = run_dltrain(*command, cwd=project, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "UserWarning" not in done.stderr and "warnings.warn" not in done.stderr, command
