"""Image class folders prepared a shard at a time (data/preparation/image_folders.py): never
the whole set decoded at once, and the same shards, profile and scaling as decoding it whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltrain.data.preparation.arrays import split_rows
from dltrain.data.prepare import prepare
from dltrain.data.readers import images as image_reader
from dltrain.data.readers.images import ImageFolders, read_image_folders
from dltrain.errors import DataQualityError
from dltrain.manifest import ImagePreprocessing
from dltrain.recipe.data import DataFormat, DataSpec

SIDE = 8
PIXELS = SIDE * SIDE * 3


def image_folder(root: Path, per_class: int, *, copies: int = 0) -> Path:
    """Two classes of distinct noisy PNGs (``copies`` of them written twice more)."""
    rng = np.random.default_rng(0)
    for label, base in (("dark", 40), ("light", 200)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 20, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
            if i < copies:
                Image.fromarray(pixels).save(root / label / f"{i:03d}-copy.png")
    return root


def spec(source: Path, **kwargs: object) -> DataSpec:
    return DataSpec.model_validate({"source": source, "format": "images", **kwargs})


@pytest.fixture
def decoded_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch of images decoded, with a shard of 5 images' bytes."""
    monkeypatch.setattr("dltrain.data.store.SHARD_BYTES", 5 * PIXELS)
    sizes: list[int] = []
    whole = ImageFolders.decode

    def counted(self: ImageFolders, paths: list[Path]) -> tuple[np.ndarray, int]:
        sizes.append(len(paths))
        return whole(self, paths)

    monkeypatch.setattr(image_reader.ImageFolders, "decode", counted)
    return sizes


def test_prepare_decodes_a_shard_at_a_time_and_stores_what_a_whole_decode_gives(
    tmp_path: Path, decoded_batches: list[int]
) -> None:
    root = image_folder(tmp_path / "pets", 24)
    data = spec(root, split={"validation": 0.25, "test": 0.25})
    dataset = prepare(data, 3, tmp_path / "out").dataset
    assert max(decoded_batches) <= 5 and sum(decoded_batches) == 48  # each image once
    assert all(len(s.shards) > 1 for s in dataset.manifest.splits.values())
    decoded_batches.clear()
    whole_x, whole_y = read_image_folders(root).splits["train"]  # the whole-set path
    assert decoded_batches == [48]
    classes = dataset.manifest.classes
    rows = split_rows(whole_y, False, data, 3, DataFormat.IMAGES, classes)
    for name, taken in zip(("train", "validation", "test"), rows, strict=True):
        x, y = dataset.load_split(name)
        np.testing.assert_array_equal(x, whole_x[taken])
        np.testing.assert_array_equal(y, whole_y[taken])


def test_standard_scaling_is_fitted_on_the_training_pixels_without_holding_them(
    tmp_path: Path, decoded_batches: list[int]
) -> None:
    root = image_folder(tmp_path / "pets", 20)
    dataset = prepare(spec(root, scaling="standard"), 1, tmp_path / "out").dataset
    assert max(decoded_batches) <= 5
    train_x, _ = dataset.load_split("train")
    scaled = train_x * dataset.manifest.preprocessing_as(ImagePreprocessing).scale
    scaled = scaled + dataset.manifest.preprocessing_as(ImagePreprocessing).offset
    assert abs(scaled.mean()) < 1e-9 and abs(scaled.std() - 1.0) < 1e-9


def test_duplicates_and_leaks_are_found_across_chunks_and_a_breach_leaves_nothing(
    tmp_path: Path, decoded_batches: list[int]
) -> None:
    root = image_folder(tmp_path / "pets", 12, copies=5)  # 10 images stored twice
    result = prepare(spec(root, split={"validation": 0.3}), 1, tmp_path / "out")
    assert max(decoded_batches) <= 5
    splits = {n: result.dataset.load_split(n)[0] for n in ("train", "validation", "test")}
    flat = {n: x.reshape(len(x), -1) for n, x in splits.items()}
    duplicates = sum(len(x) - len(np.unique(x, axis=0)) for x in flat.values())
    train_rows = {row.tobytes() for row in flat["train"]}
    leaks = {
        n: sum(row.tobytes() in train_rows for row in flat[n])
        for n in ("validation", "test")
        if len(flat[n])
    }
    assert duplicates + sum(leaks.values()) > 0  # the seed puts some copies together
    assert result.profile["duplicate_rows"] == duplicates
    assert result.profile["leaking_rows"] == leaks
    breach = spec(root, checks={"max_duplicates": 0.0, "allow_leakage": False})
    with pytest.raises(DataQualityError):
        prepare(breach, 1, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
