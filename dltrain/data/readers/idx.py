"""MNIST-family IDX files: their names, and reading one (gzip-compressed or not).

One name pattern serves ``prepare`` (which pairs images with labels per split) and ``predict``
(which takes the one images file of a folder), so both accept the same files:
``train-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte``,
``emnist-letters-test-images-idx3-ubyte.gz``.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dltrain.data.readers.arrays import SourceArrays, check_examples, check_splits_agree
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data is big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(r"^(?P<stem>.*?)[-_.]?idx(?P<dims>\d)[-_.]ubyte(?:\.gz)?$", re.IGNORECASE)
_TEST_WORD = re.compile(r"(^|[-_.])(t10k|test)([-_.]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class IdxName:
    """What an IDX file's name says: which split it belongs to and whether it holds labels."""

    split: str  # "train" or "test"
    labels: bool  # one dimension: a label per example


def parse_idx_name(name: str) -> IdxName | None:
    """The split and kind an IDX file name announces, or None for any other file."""
    match = _IDX_NAME.match(name)
    if match is None:
        return None
    split = "test" if _TEST_WORD.search(match["stem"]) else "train"
    return IdxName(split=split, labels=match["dims"] == "1")


def find_idx_folder(folder: Path) -> Path | None:
    """``folder`` or the one subfolder of it that holds IDX files (Debian's packages and some
    downloads nest them one level down); None when neither does."""
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir())
    for candidate in candidates:
        if any(parse_idx_name(p.name) for p in candidate.iterdir() if p.is_file()):
            return candidate
    return None


def read_idx_folder(folder: Path) -> SourceArrays:
    """Read the image/label IDX pairs of an MNIST-family folder.

    ``t10k`` and ``test`` files are the source's test split. A folder holding a single pair (such
    as the bundled demo's MNIST test set) is one pool that prepare splits three ways.

    Raises:
        DataError: no complete pair, two files of one kind for a split, or files that disagree.
    """
    pairs: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(folder.iterdir()):
        name = parse_idx_name(path.name)
        if name is not None and path.is_file():
            kind = "labels" if name.labels else "images"
            pairs.setdefault(name.split, {}).setdefault(kind, []).append(path)
    for split, kinds in pairs.items():
        for kind, paths in kinds.items():
            if len(paths) > 1:
                raise DataError(
                    f"{folder} holds {len(paths)} IDX {kind} files for the {split} split "
                    f"({', '.join(p.name for p in paths)}). Expected one; move the others out."
                )
    complete = {s: p for s, p in pairs.items() if {"images", "labels"} <= p.keys()}
    if not complete:
        names = [p.name for kinds in pairs.values() for paths in kinds.values() for p in paths]
        found = ", ".join(sorted(names))
        raise DataError(
            f"{folder} has no complete pair of IDX image and label files "
            f"(found: {found or 'none'}). Expected e.g. train-images-idx3-ubyte.gz with "
            f"train-labels-idx1-ubyte.gz. Copy the missing file next to the others."
        )
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    files: list[Path] = []
    for split, kinds in complete.items():
        (images_file,), (labels_file,) = kinds["images"], kinds["labels"]
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{images_file.name} holds {images.shape[0] if images.ndim else 0} examples of "
                f"shape {images.shape[1:]} but {labels_file.name} holds labels of shape "
                f"{labels.shape}. Expected one label per image; the two files do not belong "
                f"together."
            )
        check_examples(images, str(images_file))
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{labels_file} holds {labels.dtype} values, not integer class labels. Expected "
                f"an IDX labels file of type 0x08 (unsigned bytes) or another integer type, as "
                f"MNIST's; check that {labels_file.name} is the labels file."
            )
        splits[split] = (images, labels.astype(np.int64))
        files += [images_file, labels_file]
    if "train" not in splits:  # a lone pair is the whole pool, whatever its file name says
        splits = {"train": splits.pop("test")}
    check_splits_agree(splits, str(folder))
    return SourceArrays(splits=splits, files=files, format=DataFormat.IDX)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not.

    The header is checked before the data is read, and never more than the bytes it announces
    are decompressed, so a small file that inflates to gigabytes is refused, not unpacked.

    Raises:
        DataError: a corrupt or truncated file, or one whose header does not match its size.
    """
    try:
        with _open(path) as handle:
            head = handle.read(4)
            dtype, ndim = _check_magic(path, head)
            dims = handle.read(4 * ndim)
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
            # Python ints: a forged header's product overflows int64 (to 0, which "matched")
            size = math.prod(shape) * dtype.itemsize
            data = _read_at_most(handle, size + 1) if len(shape) == ndim else b""
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable gzip file ({exc}). Expected an IDX file compressed with "
            f"gzip, as MNIST distributes them; the copy is probably truncated or damaged. Copy it "
            f"again (`gzip -t {path.name}` checks a copy)."
        ) from None
    if len(shape) != ndim or len(data) != size:
        got = "more" if len(data) > size else f"{len(data):,} bytes"
        raise DataError(
            f"{path}'s header announces shape {shape}, {size:,} bytes of data, but the file holds "
            f"{got}. The file is truncated or damaged; copy it again."
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_at_most(handle: BinaryIO, size: int, chunk: int = 1 << 24) -> bytes:
    """Up to ``size`` bytes, read in chunks: memory follows what the file holds, not what its
    header claims (a forged header may announce exabytes)."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = handle.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a BinaryIO in all but name
    return path.open("rb")


def _check_magic(path: Path, head: bytes) -> tuple[np.dtype, int]:
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path} does not start with an IDX header (first bytes: {head[:4].hex() or 'none'}). "
            f"Expected 00 00 <type> <dims>, e.g. 00 00 08 03 for MNIST images. Check that the "
            f"file is an IDX file and not, say, an HTML error page saved under its name."
        )
    return np.dtype(_IDX_DTYPES[head[2]]), head[3]
