"""Readers for raw array data: MNIST-family IDX folders and ``.npz`` archives.

A reader returns the source's own splits (``train`` and, when the source has one, ``test``) as
NumPy arrays, plus the files it read so that prepare can fingerprint them.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain.errors import DataError
from dltrain.recipe.schema import DataFormat

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data is big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(
    r"^(?P<split>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx\d[-_.]ubyte(?:\.gz)?$"
)
_NPZ_KEYS = (("x_train", "y_train"), ("x", "y"), ("images", "labels"))


@dataclass
class SourceArrays:
    """Raw examples and integer labels, split as the source ships them."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    files: list[Path] = field(default_factory=list)
    format: DataFormat = DataFormat.AUTO

    @property
    def has_test(self) -> bool:
        return "test" in self.splits


def read_source(source: Path, fmt: DataFormat) -> SourceArrays:
    """Read a raw dataset.

    Args:
        source: a folder of IDX files, or an ``.npz`` file.
        fmt: the format, or ``auto`` to tell from the path.

    Raises:
        DataError: missing, unreadable or inconsistent files.
    """
    if not source.exists():
        raise DataError(
            f"Data source {source} does not exist. Expected a folder of MNIST-style IDX files or "
            f"an .npz file. Fix `data.source` in the recipe (relative paths are read from the "
            f"recipe's folder) or pass --set data.source=PATH."
        )
    fmt = detect_format(source) if fmt == DataFormat.AUTO else fmt
    if fmt == DataFormat.IDX:
        return read_idx_folder(source)
    return read_npz(source)


def detect_format(source: Path) -> DataFormat:
    """Tell the format from the path.

    Raises:
        DataError: nothing recognisable is there.
    """
    if source.is_file() and source.suffix == ".npz":
        return DataFormat.NPZ
    if source.is_dir() and any(_IDX_NAME.match(p.name) for p in source.iterdir()):
        return DataFormat.IDX
    listing = sorted(p.name for p in source.iterdir())[:8] if source.is_dir() else [source.name]
    raise DataError(
        f"Cannot tell the format of {source} (holds: {', '.join(listing) or 'nothing'}). Expected "
        f"a folder of IDX files named like train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz "
        f"(MNIST's names), or an .npz file. Set `data.format` in the recipe if the names differ."
    )


def read_idx_folder(folder: Path) -> SourceArrays:
    """Read the image/label IDX pairs of an MNIST-family folder.

    ``t10k`` and ``test`` files are the source's test split. A folder holding a single pair (such
    as the bundled demo's MNIST test set) is one pool that prepare splits three ways.
    """
    pairs: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _IDX_NAME.match(path.name)
        if match:
            split = "test" if match["split"] in ("t10k", "test") else "train"
            pairs.setdefault(split, {})[match["kind"]] = path
    complete = {s: p for s, p in pairs.items() if {"images", "labels"} <= p.keys()}
    if not complete:
        found = ", ".join(sorted(p.name for kinds in pairs.values() for p in kinds.values()))
        raise DataError(
            f"{folder} has no complete pair of IDX image and label files "
            f"(found: {found or 'none'}). Expected e.g. train-images-idx3-ubyte.gz with "
            f"train-labels-idx1-ubyte.gz. Copy the missing file next to the others."
        )
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    files: list[Path] = []
    for split, kinds in complete.items():
        images = read_idx(kinds["images"])
        labels = read_idx(kinds["labels"])
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{kinds['images'].name} holds {images.shape[0] if images.ndim else 0} examples of "
                f"shape {images.shape[1:]} but {kinds['labels'].name} holds labels of shape "
                f"{labels.shape}. Expected one label per image; the two files do not belong "
                f"together."
            )
        splits[split] = (images, labels.astype(np.int64))
        files += [kinds["images"], kinds["labels"]]
    if "train" not in splits:  # a lone pair is the whole pool, whatever its file name says
        splits = {"train": splits.pop("test")}
    return SourceArrays(splits=splits, files=files, format=DataFormat.IDX)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not.

    Raises:
        DataError: a corrupt or truncated file, or one whose header does not match its size.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable gzip file ({exc}). Expected an IDX file compressed with "
            f"gzip, as MNIST distributes them; the copy is probably truncated or damaged. Copy it "
            f"again (`gzip -t {path.name}` checks a copy)."
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path} does not start with an IDX header (first bytes: {raw[:4].hex() or 'none'}). "
            f"Expected 00 00 <type> <dims>, e.g. 00 00 08 03 for MNIST images. Check that the "
            f"file is an IDX file and not, say, an HTML error page saved under its name."
        )
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(shape) != ndim or len(raw) != expected:
        raise DataError(
            f"{path} is {len(raw)} bytes once decompressed but its header announces shape "
            f"{shape}, which needs {expected}. The file is truncated or damaged; copy it again."
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_npz(path: Path) -> SourceArrays:
    """Read ``x_train``/``y_train`` (and ``x_test``/``y_test``), or ``x``/``y``, from an .npz.

    Raises:
        DataError: unreadable archive or unexpected keys.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zlib.error, EOFError) as exc:
        raise DataError(
            f"{path} is not a readable .npz archive ({exc}). Expected a file written by "
            f"numpy.savez; copy it again or save it without pickled objects."
        ) from None
    for x_key, y_key in _NPZ_KEYS:
        if x_key in arrays and y_key in arrays:
            splits = {"train": (arrays[x_key], arrays[y_key])}
            if x_key == "x_train" and "x_test" in arrays and "y_test" in arrays:
                splits["test"] = (arrays["x_test"], arrays["y_test"])
            break
    else:
        raise DataError(
            f"{path} holds the arrays {', '.join(sorted(arrays)) or 'none'}. Expected x_train and "
            f"y_train (with optional x_test and y_test, as in keras.datasets), or x and y. Rename "
            f"the arrays when saving."
        )
    for name, (x, y) in splits.items():
        if len(x) != len(y) or y.ndim != 1:
            raise DataError(
                f"{path}: the {name} split has {len(x)} examples but labels of shape {y.shape}. "
                f"Expected one integer label per example."
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"{path}: labels of the {name} split are {y.dtype}, expected integers (class "
                f"indices). Convert them before saving."
            )
        splits[name] = (x, y.astype(np.int64))
    return SourceArrays(splits=splits, files=[path], format=DataFormat.NPZ)
