"""prepare: splits, manifest, no-op re-runs, checksums, scaling statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dltrain.data.preparation.arrays import scaling_stats
from dltrain.data.prepare import prepare
from dltrain.data.store import open_store
from dltrain.errors import DataError
from dltrain.recipe.schema import DataSpec, Scaling, SplitSpec
from tests.conftest import synthetic_images, write_idx


def spec(source: Path, **kwargs: object) -> DataSpec:
    return DataSpec.model_validate({"source": source, **kwargs})


def test_pool_is_split_exactly_and_stratified(tmp_path: Path) -> None:
    x, y = synthetic_images(300, num_classes=3)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    result = prepare(
        spec(tmp_path / "d.npz", split={"validation": 0.1, "test": 0.2}), 1, tmp_path / "out"
    )
    splits = result.dataset.manifest.to_json()["splits"]
    assert {k: v["num_examples"] for k, v in splits.items()} == {
        "train": 210,
        "validation": 30,
        "test": 60,
    }
    assert splits["test"]["class_counts"] == [20, 20, 20]
    assert splits["validation"]["class_counts"] == [10, 10, 10]
    # every example lands in exactly one split
    seen = np.concatenate([result.dataset.load_split(s)[0] for s in splits])
    assert len(np.unique(seen.reshape(len(seen), -1), axis=0)) == len(
        np.unique(x.reshape(300, -1), axis=0)
    )


def test_source_test_set_is_kept_as_test(idx_folder: Path, tmp_path: Path) -> None:
    result = prepare(spec(idx_folder), 1, tmp_path / "out")
    dataset = result.dataset
    assert dataset.num_examples("test") == 60
    assert dataset.num_examples("train") + dataset.num_examples("validation") == 240
    assert dataset.input_shape == (12, 12, 1)  # a channel axis is added for image models


def test_splits_depend_on_the_seed_only(idx_folder: Path, tmp_path: Path) -> None:
    a = prepare(spec(idx_folder), 1, tmp_path / "a").dataset.load_split("validation")[1]
    b = prepare(spec(idx_folder), 1, tmp_path / "b").dataset.load_split("validation")[1]
    c = prepare(spec(idx_folder), 2, tmp_path / "c").dataset.load_split("validation")[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        prepare(spec(idx_folder), 1, tmp_path / "d").dataset.load_split("validation")[0], c
    )


def test_rerun_is_a_no_op_until_something_changes(idx_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert prepare(spec(idx_folder), 1, out).up_to_date is False
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert prepare(spec(idx_folder), 1, out).up_to_date is True
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert prepare(spec(idx_folder), 1, out, force=True).up_to_date is False
    assert prepare(spec(idx_folder, scaling="standard"), 1, out).up_to_date is False
    x, y = synthetic_images(240, seed=9)
    write_idx(idx_folder / "train-images-idx3-ubyte.gz", x)
    assert prepare(spec(idx_folder, scaling="standard"), 1, out).up_to_date is False


def test_manifest_describes_the_dataset(idx_folder: Path, tmp_path: Path) -> None:
    prepare(spec(idx_folder, classes=["a", "b", "c"]), 1, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["target"] == {
        "classes": ["a", "b", "c"],
        "num_classes": 3,
        "class_weights": [1.0, 1.0, 1.0],  # 80 training examples per class: balanced
    }
    assert manifest["features"] == {"kind": "image", "shape": [12, 12, 1], "dtype": "uint8"}
    assert {f["name"] for f in manifest["source"]["files"]} == {
        p.name for p in idx_folder.iterdir()
    }
    assert all(
        len(s["sha256"]) == 64 for split in manifest["splits"].values() for s in split["shards"]
    )
    assert manifest["preprocessing"] == {
        "scaling": "unit",
        "scale": 1 / 255,
        "offset": 0.0,
        "sampling": "none",
        "pixel_range": [0.0, 255.0],  # synthetic 8-bit pixels
    }


def test_changed_shard_is_refused(idx_folder: Path, tmp_path: Path) -> None:
    dataset = prepare(spec(idx_folder), 1, tmp_path / "out").dataset
    shard = tmp_path / "out" / dataset.manifest.to_json()["splits"]["train"]["shards"][0]["file"]
    np.savez_compressed(shard, x=np.zeros((1, 12, 12, 1), np.uint8), y=np.zeros(1, np.int64))
    with pytest.raises(DataError, match="changed since"):
        open_store(tmp_path / "out").load_split("train")


def test_failed_prepare_leaves_the_previous_dataset_intact(
    idx_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prepare(spec(idx_folder), 1, out)
    before = sorted(p.name for p in out.iterdir())
    (idx_folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError):
        prepare(spec(idx_folder), 1, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_single_example_class_cannot_be_stratified(tmp_path: Path) -> None:
    x, y = synthetic_images(40, num_classes=2)
    y[0] = 2  # class 2 has one example
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(DataError, match="class\\(es\\) 2 have a single example"):
        prepare(spec(tmp_path / "d.npz"), 1, tmp_path / "out")


def test_class_names_must_cover_every_label(idx_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="names 2 classes"):
        prepare(spec(idx_folder, classes=["a", "b"]), 1, tmp_path / "out")


def test_no_room_left_to_train_is_a_recipe_mistake() -> None:
    with pytest.raises(ValueError, match="at least 10%"):
        SplitSpec(validation=0.5, test=0.45)


@pytest.mark.parametrize(
    ("scaling", "low", "high"),
    [(Scaling.UNIT, 0.0, 1.0), (Scaling.SYMMETRIC, -1.0, 1.0), (Scaling.NONE, 0.0, 255.0)],
)
def test_pixel_scaling_ranges(scaling: Scaling, low: float, high: float) -> None:
    pixels = np.array([[0, 255]], dtype=np.uint8)
    stats = scaling_stats(pixels, scaling)
    assert pixels * stats["scale"] + stats["offset"] == pytest.approx(np.array([[low, high]]))


def test_standard_scaling_uses_training_statistics() -> None:
    train = np.array([[10, 20, 30, 40]], dtype=np.uint8)
    stats = scaling_stats(train, Scaling.STANDARD)
    scaled = train * stats["scale"] + stats["offset"]
    assert scaled.mean() == pytest.approx(0.0) and scaled.std() == pytest.approx(1.0)
