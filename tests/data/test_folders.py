"""Class folders of images and of .txt files, and Debian's installed-dataset layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltrain.data.prepare import prepare
from dltrain.data.readers.formats import read_source
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat, DataSpec
from tests.conftest import synthetic_images, write_idx


def spec(source: Path, **kwargs: object) -> DataSpec:
    return DataSpec.model_validate({"source": source, **kwargs})


def photo(
    path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB"
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)


def test_train_and_test_folders_decoded_resized_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "flowers"
    for i in range(6):
        photo(root / "train" / "daisy" / f"{i}.jpg", (40, 30), (250, 250, 250))
        photo(root / "train" / "iris" / f"{i}.png", (20, 20), (90, 0, 200))
    photo(root / "test" / "daisy" / "t.jpg", (40, 30), (250, 250, 250))
    photo(root / "test" / "iris" / "t.png", (64, 64), (90, 0, 200), mode="L")  # greyscale
    dataset = prepare(
        spec(root, image={"size": [16, 16], "channels": 3}, split={"validation": 0.25}),
        1,
        tmp_path / "out",
    ).dataset
    manifest = dataset.manifest.to_json()
    assert manifest["features"] == {"kind": "image", "shape": [16, 16, 3], "dtype": "uint8"}
    assert manifest["target"]["classes"] == ["daisy", "iris"]
    assert manifest["source"]["format"] == "images"
    assert {k: v["num_examples"] for k, v in manifest["splits"].items()} == {
        "train": 9,
        "validation": 3,
        "test": 2,
    }
    x, y = dataset.load_split("test")
    assert x.shape == (2, 16, 16, 3) and x.dtype == np.uint8
    daisy = x[y == 0][0]
    assert daisy.min() > 240  # a white photo stays white through decoding and resizing
    assert np.ptp(x[y == 1][0], axis=-1).max() == 0  # the greyscale iris became 3 equal channels


def test_text_folders(tmp_path: Path) -> None:
    root = tmp_path / "reviews"
    for label, words in (("neg", "awful boring waste"), ("pos", "great fun loved")):
        (root / label).mkdir(parents=True)
        for i in range(10):
            (root / label / f"{i}.txt").write_text(f"{words} review number {i}")
    source = read_source(root, DataFormat.AUTO)
    assert source.format == DataFormat.TEXT and source.class_names == ["neg", "pos"]
    dataset = prepare(spec(root, text={"sequence_length": 5}), 1, tmp_path / "out").dataset
    manifest = dataset.manifest.to_json()
    assert manifest["features"]["kind"] == "text" and manifest["features"]["sequence_length"] == 5
    assert {"awful", "loved", "review"} <= set(manifest["preprocessing"]["vocabulary"])
    x, y = dataset.load_split("train")
    assert x.dtype == object and all(isinstance(t, str) for t in x)
    assert {t.split()[0] for t in x[y == 0]} == {"awful"}


def test_debian_dataset_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # apt-get install dataset-fashion-mnist puts the IDX files under /usr/share/datasets/<name>/
    installed = tmp_path / "usr-share-datasets" / "tiny-mnist" / "data"
    installed.mkdir(parents=True)
    x, y = synthetic_images(50, size=6)
    write_idx(installed / "train-images-idx3-ubyte.gz", x)
    write_idx(installed / "train-labels-idx1-ubyte.gz", y)
    monkeypatch.setenv("DLTRAIN_DATASETS_DIR", str(tmp_path / "usr-share-datasets"))
    result = prepare(spec(tmp_path / "recipes" / "tiny-mnist"), 1, tmp_path / "out")
    manifest = result.dataset.manifest.to_json()
    assert manifest["source"]["format"] == "idx"
    assert manifest["source"]["path"] == str(tmp_path / "usr-share-datasets" / "tiny-mnist")
    assert sum(s["num_examples"] for s in manifest["splits"].values()) == 50


def test_a_single_class_folder_is_refused(tmp_path: Path) -> None:
    for i in range(4):
        photo(tmp_path / "imgs" / "daisy" / f"{i}.png", (8, 8), (250, 250, 250))
    with pytest.raises(DataError, match=r"one class only \(daisy\).*at least two"):
        prepare(spec(tmp_path / "imgs"), 1, tmp_path / "out")


def test_prepare_in_the_image_folder_itself_skips_its_own_outputs(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    for label, colour in (("cat", (250, 0, 0)), ("dog", (0, 0, 250))):
        for i in range(20):
            photo(root / label / f"{i}.png", (8, 8), colour)
    # what `dltrain init .` then `prepare` and `train` leave inside the source folder
    first = prepare(spec(root), 1, root / "data" / "pets")
    (root / "runs" / "pets" / "20260101-000000-abcd").mkdir(parents=True)
    (root / "runs" / "pets" / "20260101-000000-abcd" / "run.json").write_text("{}")
    assert first.dataset.manifest.classes == ["cat", "dog"]
    again = prepare(spec(root), 1, root / "data" / "pets")
    assert again.up_to_date  # the outputs are not part of the source's fingerprint


def _png_announcing(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header announces ``width`` × ``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    photo(path, (1, 1), (0, 0, 0))
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_an_image_announcing_225_million_pixels_is_refused_not_decoded(tmp_path: Path) -> None:
    photo(tmp_path / "imgs" / "a" / "0.png", (8, 8), (250, 0, 0))
    photo(tmp_path / "imgs" / "b" / "0.png", (8, 8), (0, 0, 250))
    _png_announcing(tmp_path / "imgs" / "a" / "bomb.png", 15_000, 15_000)
    with pytest.raises(DataError, match=r"bomb.png.*exceeds limit"):
        read_source(tmp_path / "imgs", DataFormat.AUTO)
