"""Raw readers: IDX folders and .npz archives, and the errors bad files give."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dltrain.data.readers.formats import read_source
from dltrain.data.readers.idx import read_idx
from dltrain.errors import DataError
from dltrain.recipe.schema import DataFormat
from tests.conftest import REPO, synthetic_images, write_idx


def test_idx_round_trip(tmp_path: Path) -> None:
    images, _ = synthetic_images(5, size=6)
    write_idx(tmp_path / "a.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), images)


def test_bundled_demo_is_one_pool_of_10k_mnist_digits() -> None:
    source = read_source(REPO / "demo" / "mnist", DataFormat.AUTO)
    assert source.format == DataFormat.IDX
    assert not source.has_test  # a lone t10k pair is the pool prepare splits three ways
    x, y = source.splits["train"]
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_folder_with_train_and_t10k_keeps_its_test_set(idx_folder: Path) -> None:
    source = read_source(idx_folder, DataFormat.AUTO)
    assert source.has_test
    assert len(source.splits["train"][0]) == 240 and len(source.splits["test"][0]) == 60


def test_corrupt_gzip_is_a_clear_data_error(idx_folder: Path) -> None:
    target = idx_folder / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:200])  # truncated copy
    with pytest.raises(DataError) as caught:
        read_source(idx_folder, DataFormat.AUTO)
    assert "train-images-idx3-ubyte.gz" in caught.value.message
    assert "copy it again" in caught.value.message.lower()


def test_header_that_does_not_match_the_size(tmp_path: Path) -> None:
    images, _ = synthetic_images(4, size=6)
    write_idx(tmp_path / "x.gz", images)
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(DataError, match="header announces shape"):
        read_idx(tmp_path / "x.gz")


def test_not_an_idx_file(tmp_path: Path) -> None:
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"<html>404</html>"))
    with pytest.raises(DataError, match="IDX header"):
        read_idx(tmp_path / "x.gz")


def test_images_and_labels_that_do_not_match(idx_folder: Path) -> None:
    write_idx(idx_folder / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="do not belong together"):
        read_source(idx_folder, DataFormat.AUTO)


def test_missing_half_of_a_pair(idx_folder: Path) -> None:
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (idx_folder / name).unlink()
    with pytest.raises(DataError, match="no complete pair"):
        read_source(idx_folder, DataFormat.AUTO)


def test_missing_source_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_source(tmp_path / "nope", DataFormat.AUTO)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="Cannot tell the format"):
        read_source(tmp_path, DataFormat.AUTO)


def test_npz_in_keras_layout(tmp_path: Path) -> None:
    x, y = synthetic_images(30)
    tx, ty = synthetic_images(10)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    source = read_source(tmp_path / "d.npz", DataFormat.AUTO)
    assert source.format == DataFormat.NPZ and source.has_test
    np.testing.assert_array_equal(source.splits["test"][1], ty)


def test_npz_with_unexpected_keys_lists_them(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", features=np.zeros((3, 2)), target=np.zeros(3))
    with pytest.raises(DataError, match="features, target"):
        read_source(tmp_path / "d.npz", DataFormat.AUTO)


def test_npz_float_labels_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4)), y=np.array([0.5, 1.0, 0.0]))
    with pytest.raises(DataError, match="expected integers"):
        read_source(tmp_path / "d.npz", DataFormat.AUTO)


def test_corrupt_npz_is_a_data_error(tmp_path: Path) -> None:
    x, y = synthetic_images(10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    blob = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(blob[: len(blob) // 2])  # truncated copy
    with pytest.raises(DataError, match="not a readable .npz"):
        read_source(tmp_path / "d.npz", DataFormat.AUTO)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"x": np.zeros((0, 4), np.float32), "y": np.zeros(0, np.int64)}, "holds no examples"),
        ({"x": np.array([1.0, np.nan, 2.0, 3.0]).reshape(2, 2), "y": np.array([0, 1])}, "NaN"),
        ({"x": np.array([[1.0, np.inf], [0.0, 1.0]]), "y": np.array([0, 1])}, "infinite"),
        ({"x": np.array([[1e300, 0.0], [0.0, 1.0]]), "y": np.array([0, 1])}, "float32's range"),
        ({"x": np.zeros((2, 2), np.complex64), "y": np.array([0, 1])}, "complex64 examples"),
        ({"x": np.array(["a", "b"]).reshape(2, 1), "y": np.array([0, 1])}, "<U1 examples"),
        ({"x": np.zeros(2, np.float32), "y": np.array([0, 1])}, "one example per row"),
    ],
    ids=["empty", "nan", "inf", "1e300", "complex", "text", "scalar"],
)
def test_npz_examples_that_cannot_train_are_refused(
    tmp_path: Path, arrays: dict[str, np.ndarray], needle: str
) -> None:
    np.savez(tmp_path / "d.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=needle):
        read_source(tmp_path / "d.npz", DataFormat.AUTO)


def test_an_idx_file_of_no_images_is_refused(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((0, 4, 4), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="holds no examples"):
        read_source(tmp_path, DataFormat.AUTO)


def test_a_gzip_bomb_behind_a_small_header_is_not_inflated(tmp_path: Path) -> None:
    import gzip
    import resource
    import struct

    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 10, 28, 28)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:  # 10 images announced, 1 GB of zeros behind them
        handle.write(header)
        block = bytes(1 << 20)
        for _ in range(1024):
            handle.write(block)
    assert path.stat().st_size < 2 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match="announces shape"):
        read_idx(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 << 10  # KB: 100 MB
