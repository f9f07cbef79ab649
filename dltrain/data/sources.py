"""Finding a source and reading raw array data: MNIST-family IDX folders and ``.npz`` archives.

A reader returns the source's own splits (``train`` and, when the source has one, ``test``) as
NumPy arrays, plus the files it read so that prepare can fingerprint them. ``detect_format``
tells every supported format from the path; ``resolve_source`` also finds datasets installed by
Debian's ``dataset-*`` packages under ``/usr/share/datasets/<name>/``.
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat, ImageSpec

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data is big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(
    r"^(?P<split>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx\d[-_.]ubyte(?:\.gz)?$"
)
_NPZ_KEYS = (("x_train", "y_train"), ("x", "y"), ("images", "labels"))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".data", ".test", ".dat", ".psv", "")
DEBIAN_DATASETS = Path("/usr/share/datasets")


@dataclass
class SourceArrays:
    """Raw examples and integer labels, split as the source ships them."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    files: list[Path] = field(default_factory=list)
    format: DataFormat = DataFormat.AUTO
    class_names: list[str] | None = None  # from folder names; None for integer labels
    notes: list[str] = field(default_factory=list)

    @property
    def has_test(self) -> bool:
        return "test" in self.splits


def datasets_root() -> Path:
    """Where Debian's dataset packages install (``DLTRAIN_DATASETS_DIR`` overrides it)."""
    return Path(os.environ.get("DLTRAIN_DATASETS_DIR", DEBIAN_DATASETS))


def resolve_source(source: Path) -> Path:
    """The path of ``source``; a bare name that is not a path here may be an installed dataset.

    ``fashion-mnist`` finds ``/usr/share/datasets/fashion-mnist/`` (``apt-get install
    dataset-fashion-mnist``).

    Raises:
        DataError: nothing is there.
    """
    if source.exists():
        return source
    installed = datasets_root() / source.name
    if installed.exists():
        return installed
    raise DataError(
        f"Data source {source} does not exist (nor {installed}, where Debian's dataset packages "
        f"install). Expected a table (CSV, TSV, Parquet), a folder of images or .txt files per "
        f"class, a folder of MNIST-style IDX files or an .npz file. Fix `data.source` in the "
        f"recipe (relative paths are read from the recipe's folder) or pass "
        f"--set data.source=PATH."
    )


def read_source(source: Path, fmt: DataFormat, image: ImageSpec | None = None) -> SourceArrays:
    """Read a raw array dataset (IDX, npz, image or text folders).

    Args:
        source: a folder of IDX files, an ``.npz`` file, or class folders.
        fmt: the format, or ``auto`` to tell from the path.
        image: size and channels for image folders.

    Raises:
        DataError: missing, unreadable or inconsistent files.
    """
    source = resolve_source(source)
    fmt = detect_format(source) if fmt == DataFormat.AUTO else fmt
    if fmt == DataFormat.IDX:
        return read_idx_folder(_idx_folder(source) or source)
    if fmt == DataFormat.IMAGES:
        from dltrain.data.images import read_image_folders

        return read_image_folders(source, image)
    if fmt == DataFormat.TEXT:
        from dltrain.data.text import read_text_folders

        return read_text_folders(source)
    if fmt == DataFormat.NPZ:
        return read_npz(source)
    raise DataError(f"{source} is a table ({fmt.value}); tables are read by data/tabular.py.")


def detect_format(source: Path) -> DataFormat:
    """Tell the format from the path (and, for files without a telling suffix, the first bytes).

    Raises:
        DataError: nothing recognisable is there.
    """
    if source.is_file():
        suffix = source.suffix.lower()
        if suffix == ".npz":
            return DataFormat.NPZ
        if suffix in (".parquet", ".pq"):
            return DataFormat.PARQUET
        if suffix in TABLE_SUFFIXES and _looks_like_text(source):
            return DataFormat.CSV
    elif source.is_dir():
        if _idx_folder(source) is not None:
            return DataFormat.IDX
        found = _suffixes_below(source)
        if found & set(IMAGE_SUFFIXES):
            return DataFormat.IMAGES
        if ".txt" in found:
            return DataFormat.TEXT
    listing = sorted(p.name for p in source.iterdir())[:8] if source.is_dir() else [source.name]
    raise DataError(
        f"Cannot tell the format of {source} (holds: {', '.join(listing) or 'nothing'}). "
        f"Expected a table (.csv, .tsv, .txt or .parquet), a folder of class folders of images "
        f"or .txt files, a folder of IDX files named like train-images-idx3-ubyte.gz, or an "
        f".npz file. Set `data.format` (csv, parquet, images, text, idx, npz) if the names differ."
    )


def _looks_like_text(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut at the end of the sample
    return True


def _suffixes_below(folder: Path, depth: int = 3) -> set[str]:
    """Suffixes of files inside ``folder``'s subfolders (class folders), not beside them."""
    found: set[str] = set()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in _walk(sub, depth - 1):
            found.add(path.suffix.lower())
            if len(found) > 20:
                return found
    return found


def _walk(folder: Path, depth: int) -> Iterable[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth > 0:
            yield from _walk(entry, depth - 1)
        elif entry.is_file():
            yield entry


def _idx_folder(folder: Path) -> Path | None:
    """``folder`` or the one subfolder of it that holds IDX files (Debian's packages and some
    downloads nest them one level down); None when neither does."""
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir())
    for candidate in candidates:
        if any(_IDX_NAME.match(p.name) for p in candidate.iterdir() if p.is_file()):
            return candidate
    return None


@dataclass
class ClassFolders:
    """A class-folder layout: class names and each split's files per class."""

    classes: list[str]
    splits: dict[str, dict[str, list[Path]]]


def class_folders(root: Path, suffixes: tuple[str, ...], what: str) -> ClassFolders:
    """Find ``root/[train/]<class>/*`` (and ``root/test/<class>/*``) files with ``suffixes``.

    Raises:
        DataError: no class folders, a class folder with no files, or test classes the training
            folders lack.
    """
    train_root, test_root = root / "train", root / "test"
    has_split_folders = train_root.is_dir()
    roots = {"train": train_root if has_split_folders else root}
    if has_split_folders and test_root.is_dir():
        roots["test"] = test_root
    splits: dict[str, dict[str, list[Path]]] = {}
    for split, folder in roots.items():
        per_class = {}
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in _walk(sub, 2) if p.suffix.lower() in suffixes)
            per_class[sub.name] = files
        splits[split] = per_class
    classes = sorted(splits["train"])
    if not classes:
        raise DataError(
            f"{roots['train']} has no class folders. Expected one subfolder of {what} files per "
            f"class (e.g. {roots['train']}/cat/1.jpg, {roots['train']}/dog/2.jpg), optionally "
            f"under train/ and test/."
        )
    empty = [c for c in classes if not splits["train"][c]]
    if empty:
        raise DataError(
            f"Class folder(s) {', '.join(empty)} in {roots['train']} hold no {what} files "
            f"({', '.join(suffixes)}). Add examples or remove the folder(s)."
        )
    if "test" in splits:
        extra = sorted(set(splits["test"]) - set(classes))
        if extra:
            raise DataError(
                f"{test_root} has class folder(s) {', '.join(extra)} that {train_root} lacks. "
                f"Expected the same classes in both; add training examples or remove them."
            )
    return ClassFolders(classes=classes, splits=splits)


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


def load_npz(path: Path, fix: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, without pickled objects.

    Args:
        path: the archive.
        fix: how to fix an unreadable archive, for the error's last sentence.

    Raises:
        DataError: the archive is truncated, corrupt or not an .npz at all.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} is not a readable .npz archive ({exc}). Expected a file written by "
            f"numpy.savez; {fix}."
        ) from None


def read_npz(path: Path) -> SourceArrays:
    """Read ``x_train``/``y_train`` (and ``x_test``/``y_test``), or ``x``/``y``, from an .npz.

    Raises:
        DataError: unreadable archive or unexpected keys.
    """
    arrays = load_npz(path, "copy it again or save it without pickled objects")
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
