"""Pixel scaling from the data's real range: inferred, recorded in the manifest, said, applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.data.pixels import infer_pixel_range
from dltrain.data.prepare import prepare
from dltrain.manifest import ImagePreprocessing
from dltrain.recipe.schema import DataSpec, Scaling


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        (np.array([[0, 250]], np.uint8), 0.0, 255.0),  # 8-bit: 255 is white even if unseen
        (np.array([[0, 16]], np.uint8), 0.0, 16.0),  # scikit-learn's digits
        (np.array([[0, 1]], np.int64), 0.0, 1.0),  # binary images
        (np.array([[0, 4095]], np.uint16), 0.0, 4095.0),  # 12-bit sensor data
        (np.array([[0.2, 0.7]], np.float32), 0.0, 1.0),  # already scaled: kept
        (np.array([[-0.5, 0.9]], np.float32), -1.0, 1.0),
        (np.array([[3.0, 16.0]], np.float64), 3.0, 16.0),  # other floats: their own range
    ],
)
def test_the_range_is_the_one_the_data_was_written_in(
    values: np.ndarray, low: float, high: float
) -> None:
    found = infer_pixel_range(values)
    assert (found.low, found.high) == (low, high)
    assert str(values.dtype) in found.reason


def test_decoded_image_files_are_eight_bit_however_dark() -> None:
    dark = np.full((2, 4, 4, 3), 20, np.uint8)
    assert infer_pixel_range(dark).high == 20.0
    assert infer_pixel_range(dark, decoded_images=True).high == 255.0


def digits_like(tmp_path: Path) -> Path:
    """An .npz of 8×8 images holding 0-16, stored as uint8 like scikit-learn's digits."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(120, 8, 8)).astype(np.uint8)
    x[0, 0, 0] = 16
    np.savez(tmp_path / "digits.npz", x=x, y=np.arange(120) % 3)
    return tmp_path / "digits.npz"


def test_digits_are_scaled_by_one_sixteenth_and_the_model_sees_zero_to_one(
    tmp_path: Path,
) -> None:
    from dltrain.backend import keras
    from dltrain.models.encoders import image_inputs

    result = prepare(DataSpec(source=digits_like(tmp_path)), 1, tmp_path / "out")
    manifest = result.dataset.manifest
    preprocessing = manifest.preprocessing_as(ImagePreprocessing)
    assert preprocessing.pixel_range == [0.0, 16.0]
    assert preprocessing.scale == pytest.approx(1 / 16) and preprocessing.offset == 0.0
    assert preprocessing.value_range() == pytest.approx((0.0, 1.0))
    assert any("0 to 16" in note and "1/16" in note for note in result.profile["notes"])
    raw, scaled = image_inputs(manifest)
    train_x = result.dataset.load_split("train")[0]
    seen = np.asarray(keras.Model(raw, scaled)(train_x))
    assert seen.min() == 0.0 and seen.max() == pytest.approx(1.0)


def test_a_recipe_range_overrides_the_inferred_one(tmp_path: Path) -> None:
    spec = DataSpec(source=digits_like(tmp_path), pixel_range=[0, 255], scaling=Scaling.SYMMETRIC)
    result = prepare(spec, 1, tmp_path / "out")
    preprocessing = result.dataset.manifest.preprocessing_as(ImagePreprocessing)
    assert preprocessing.pixel_range == [0.0, 255.0]
    assert 16 * preprocessing.scale + preprocessing.offset == pytest.approx(2 * 16 / 255 - 1)
    assert any("data.pixel_range" in note for note in result.profile["notes"])


@pytest.mark.parametrize("bad", [[1, 0], [0], [0, 1, 2], [5, 5]])
def test_a_pixel_range_is_low_then_high(bad: list[float]) -> None:
    with pytest.raises(ValidationError, match=r"pixel_range is \[low, high\]"):
        DataSpec(source=Path("x.npz"), pixel_range=bad)


def test_manifests_without_a_range_read_as_eight_bit() -> None:
    old = ImagePreprocessing.model_validate({"scaling": "unit", "scale": 1 / 255, "offset": 0.0})
    assert old.pixel_range == [0.0, 255.0] and old.value_range() == pytest.approx((0.0, 1.0))
