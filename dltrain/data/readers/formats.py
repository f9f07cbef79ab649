"""Where a source is and what it is: paths, the suffixes of every format, class folders.

The one place that says which files dltrain reads: ``prepare`` uses it to tell a source's format,
and ``predict`` and ``evaluate --data`` to tell what an input holds, so the two can never accept
different files. ``resolve_source`` also finds datasets installed by Debian's ``dataset-*``
packages under ``/usr/share/datasets/<name>/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dltrain.data.readers.arrays import SourceArrays, read_npz
from dltrain.data.readers.idx import find_idx_folder, read_idx_folder
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat, ImageSpec
from dltrain.runs import MANIFEST_FILE, RUN_INFO_FILE

# Every image format Pillow decodes that photos and scans come in.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Delimited text: what CSV-like files are called in the wild (UCI's .data/.test included).
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".txt", ".data", ".test", ".dat", ".psv", ""})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
DEBIAN_DATASETS = Path("/usr/share/datasets")


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


def detect_format(source: Path) -> DataFormat:
    """Tell the format from the path (and, for files without a telling suffix, the first bytes).

    Raises:
        DataError: nothing recognisable is there.
    """
    if source.is_file():
        suffix = source.suffix.lower()
        if suffix == ".npz":
            return DataFormat.NPZ
        if suffix in PARQUET_SUFFIXES:
            return DataFormat.PARQUET
        if suffix in TABLE_SUFFIXES and _looks_like_text(source):
            return DataFormat.CSV
    elif source.is_dir():
        if find_idx_folder(source) is not None:
            return DataFormat.IDX
        found = _suffixes_below(source)
        if found & IMAGE_SUFFIXES:
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
    """Whether a file reads as text in some encoding: no NUL byte in its first 4 KB (binary
    files have them; text in UTF-8, Latin-1 or Windows-1252 never does), or a UTF-16 mark."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" not in head


def _suffixes_below(folder: Path, depth: int = 3) -> set[str]:
    """Suffixes of files inside ``folder``'s subfolders (class folders), not beside them."""
    found: set[str] = set()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in walk(sub, depth - 1):
            found.add(path.suffix.lower())
            if len(found) > 20:
                return found
    return found


def walk(folder: Path, depth: int) -> Iterable[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth > 0:
            yield from walk(entry, depth - 1)
        elif entry.is_file():
            yield entry


@dataclass
class ClassFolders:
    """A class-folder layout: class names and each split's files per class."""

    classes: list[str]
    splits: dict[str, dict[str, list[Path]]]


# Where dltrain writes, relative to the working directory: inside the source folder when a
# user runs `dltrain init .` in a folder of class folders.
OUTPUT_FOLDERS = frozenset({"data", "runs"})


def holds_dltrain_outputs(folder: Path) -> bool:
    """Whether ``folder`` is dltrain's own ``data/`` or ``runs/`` (prepared datasets, runs, or a
    prepare under way), which a source folder around the working directory must not read."""
    if folder.name not in OUTPUT_FOLDERS:
        return False
    entries = list(folder.iterdir())
    return (
        not entries
        or any(e.name.startswith(".") for e in entries)
        or any(folder.glob(f"*/{MANIFEST_FILE}"))
        or any(folder.glob(f"*/*/{RUN_INFO_FILE}"))
    )


def enclosing_run(path: Path) -> Path | None:
    """The run folder ``path`` lies in (the nearest folder above it holding run.json), or None:
    predict and export must not write over a run's own record."""
    for folder in path.resolve().parents:
        if (folder / RUN_INFO_FILE).is_file():
            return folder
    return None


def class_folders(root: Path, suffixes: frozenset[str], what: str) -> ClassFolders:
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
        subfolders = (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for sub in sorted(p for p in subfolders if not holds_dltrain_outputs(p)):
            files = sorted(p for p in walk(sub, 2) if p.suffix.lower() in suffixes)
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
            f"({', '.join(sorted(suffixes))}). Add examples or remove the folder(s)."
        )
    if "test" in splits:
        extra = sorted(set(splits["test"]) - set(classes))
        if extra:
            raise DataError(
                f"{test_root} has class folder(s) {', '.join(extra)} that {train_root} lacks. "
                f"Expected the same classes in both; add training examples or remove them."
            )
    return ClassFolders(classes=classes, splits=splits)


# The formats whose source is a folder, and what they expect in it.
FOLDER_FORMATS = {
    DataFormat.IDX: "MNIST-style IDX files such as train-images-idx3-ubyte.gz",
    DataFormat.IMAGES: "one subfolder of images per class",
    DataFormat.TEXT: "one subfolder of .txt files per class",
}


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
    folder = FOLDER_FORMATS.get(fmt)
    if folder is not None and not source.is_dir():
        raise DataError(
            f"`data.format: {fmt.value}` reads a folder ({folder}), but {source} is a file. "
            f"Point `data.source` at that folder, or set `data.format: auto` to read the file "
            f"as its name says."
        )
    if fmt == DataFormat.NPZ and not source.is_file():
        raise DataError(
            f"`data.format: npz` reads one .npz file, but {source} is a folder. Point "
            f"`data.source` at the file, or set `data.format: auto` to tell the folder's format."
        )
    if fmt == DataFormat.IDX:
        return read_idx_folder(find_idx_folder(source) or source)
    if fmt == DataFormat.IMAGES:
        from dltrain.data.readers.images import read_image_folders

        return read_image_folders(source, image)
    if fmt == DataFormat.TEXT:
        from dltrain.data.readers.text import read_text_folders

        return read_text_folders(source)
    if fmt == DataFormat.NPZ:
        return read_npz(source)
    raise DataError(
        f"{source} is a table ({fmt.value}); tables are read in batches by "
        f"dltrain.data.readers.tables, not as arrays."
    )
