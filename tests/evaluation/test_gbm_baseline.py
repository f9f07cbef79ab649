"""The gradient-boosting baseline on a tiny prepared table: fitted once, cached with the
prepared data, reused, fitted again after a re-prepare; never fitted by prepare."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dltrain.data.store import open_store
from dltrain.evaluation.baselines import gbm
from dltrain.evaluation.metrics import ClassificationScorer
from tests.conftest import invoke


def write_table(path: Path, rows: int, seed: int) -> None:
    """A label decided by a number and a category, an identifier, and a gap or two."""
    rng = np.random.default_rng(seed)
    size = rng.normal(0, 1, rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    label = np.where(size + (colour == "red") * 1.5 > 0.5, "yes", "no")
    lines = ["id,size,colour,label"]
    for i in range(rows):
        value = "" if i % 23 == 0 else f"{size[i]:.3f}"
        lines.append(f"row{i},{value},{colour[i]},{label[i]}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    write_table(tmp_path / "t.csv", 300, seed=0)
    recipe = {
        "name": "t",
        "seed": 3,
        "data": {
            "source": "t.csv",
            "target": "label",
            "columns": {"id": {"type": "identifier"}},
            "split": {"validation": 0.2, "test": 0.2},
        },
        "model": {"family": "mlp", "units": [8]},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    with contextlib.chdir(tmp_path):
        code, _, err = invoke("prepare")
    assert code == 0, err
    return tmp_path


def test_fitted_once_cached_reused_and_refitted_after_a_re_prepare(
    prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[float] = []
    fit = gbm.fit_gbm

    def counting(*args: Any) -> gbm.GbmBaseline:
        found = fit(*args)
        fits.append(found.seconds)
        return found

    monkeypatch.setattr(gbm, "fit_gbm", counting)
    said: list[str] = []
    dataset = open_store(prepared / "data" / "t")
    first, note = gbm.load_or_fit_gbm(dataset, "binary", said.append)
    assert note is not None and "cached in" in note and len(fits) == 1
    assert said == ["Fitting the gradient-boosting baseline (cached for next time)"]
    assert (dataset.folder / gbm.CACHE_FILE).is_file()
    assert [name for name, _ in first.encoder.categorical] == ["colour"]
    assert first.encoder.numeric == ["size"]  # the identifier is no feature

    x, y = dataset.load_split("test")
    probabilities = first.predict(x, y.shape)
    assert probabilities.shape == (len(y), 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    accuracy = ClassificationScorer(y, probabilities, ["no", "yes"]).headline()["accuracy"]
    assert accuracy is not None and accuracy > 0.8  # the rule is in the columns

    again, note = gbm.load_or_fit_gbm(open_store(dataset.folder), "binary", said.append)
    assert note is None and len(fits) == 1 and len(said) == 1
    assert np.array_equal(again.predict(x, y.shape), probabilities)

    write_table(prepared / "t.csv", 300, seed=1)  # new data: prepare writes a new dataset
    with contextlib.chdir(prepared):
        code, _, err = invoke("prepare")
    assert code == 0, err
    assert not (dataset.folder / gbm.CACHE_FILE).exists()  # the folder was replaced whole
    _, note = gbm.load_or_fit_gbm(open_store(dataset.folder), "binary", said.append)
    assert note is not None and len(fits) == 2


def test_a_stale_or_damaged_cache_is_fitted_again(prepared: Path) -> None:
    dataset = open_store(prepared / "data" / "t")
    fitted, _ = gbm.load_or_fit_gbm(dataset, "binary", lambda _: None)
    stale = gbm.GbmBaseline(
        {**fitted.key, "fingerprint": "another source"},
        fitted.encoder,
        fitted.models,
        fitted.num_classes,
        [],
        0.0,
    )
    import pickle

    (dataset.folder / gbm.CACHE_FILE).write_bytes(pickle.dumps(stale))
    assert gbm.cached_gbm(dataset) is None
    (dataset.folder / gbm.CACHE_FILE).write_bytes(b"not a pickle")
    assert gbm.cached_gbm(dataset) is None
    _, note = gbm.load_or_fit_gbm(dataset, "binary", lambda _: None)
    assert note is not None and gbm.cached_gbm(dataset) is not None


def test_prepare_never_fits_it(tmp_path: Path) -> None:
    write_table(tmp_path / "t.csv", 60, seed=0)
    recipe = {"name": "t", "data": {"source": "t.csv", "target": "label"}}
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dltrain.cli import app\n"
        "result = CliRunner().invoke(app, ['prepare'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print([m for m in sys.modules if m.startswith('dltrain.evaluation')])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # not even the evaluation package is loaded
    assert not (tmp_path / "data" / "t" / gbm.CACHE_FILE).exists()


def test_the_encoder_codes_categories_by_vocabulary_and_unknown_ones_as_missing() -> None:
    encoder = gbm.GbmEncoder(gbm.FeatureKind.TABLE, ["size"], [("colour", ["red", "blue"])])
    x = {
        "size": np.array([1.5, np.nan, 3.0], np.float32),
        "colour": np.array(["blue", "mauve", "red"], dtype=object),
    }
    matrix = encoder.matrix(x)
    assert matrix.shape == (3, 2)
    assert np.array_equal(matrix[:, 1], [1.0, np.nan, 0.0], equal_nan=True)
    assert np.isnan(matrix[1, 0]) and matrix[2, 0] == 3.0
    mask = encoder.categorical_mask
    assert mask is not None and mask.tolist() == [False, True]
    images = gbm.GbmEncoder(gbm.FeatureKind.IMAGE)
    assert images.matrix(np.zeros((4, 8, 8, 1), np.uint8)).shape == (4, 64)
    assert images.categorical_mask is None


def test_images_are_capped_by_rows_times_pixels_times_classes() -> None:
    from tests.manifests import manifest_of

    fashion = manifest_of("multiclass")  # 28×28×1, 10 classes: minutes of fitting, so none
    assert "too large" in str(gbm.gbm_unavailable(fashion, "multiclass"))
    small = manifest_of(
        "multiclass", features={"kind": "image", "shape": [16, 16, 1], "dtype": "uint8"}
    )
    assert gbm.gbm_unavailable(small, "multiclass") is None
    assert gbm._row_cap(small) == gbm.MAX_IMAGE_CELLS // (256 * 10)
    digits = manifest_of(
        "multiclass", features={"kind": "image", "shape": [8, 8, 1], "dtype": "uint8"}
    )
    assert gbm._row_cap(digits) == gbm.MAX_TRAIN_ROWS[gbm.FeatureKind.IMAGE]
