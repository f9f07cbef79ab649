"""Raw inputs for predict, read in batches by a registry of readers keyed by format.

Each reader turns a file or folder into batches of examples shaped as the model takes them,
plus pass-through columns (ids, file names) that predict copies into its output. Today's models
take images, so the readers are: ``npz`` (an array of examples, with optional 1-D id arrays),
``idx`` (an MNIST-style images file) and ``images`` (a folder of PNG/JPEG/… files, or one file).
A new data kind plugs in with ``register_reader``: a class with ``matches(path)`` and
``chunks(batch_size)``.

The model carries its own preprocessing (scaling, vocabularies), so readers hand it raw values
exactly as the training source had them.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dltrain.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_FEATURE_KEYS = ("x", "images", "x_test", "x_train", "inputs")
_IDX_FILE = re.compile(r"[-_.]idx(?P<dims>\d)[-_.]", re.IGNORECASE)  # train-images-idx3-ubyte.gz


@dataclass(frozen=True)
class ModelInput:
    """What one example looks like to the model: feature kind, shape and dtype."""

    kind: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> ModelInput:
        features = manifest["features"]
        return cls(str(features["kind"]), tuple(features["shape"]), str(features["dtype"]))


@dataclass
class InputChunk:
    """A batch of examples plus the columns that pass through to the output."""

    features: np.ndarray
    columns: dict[str, list[Any]] = field(default_factory=dict)


def conform_examples(x: np.ndarray, model: ModelInput, where: str) -> np.ndarray:
    """Check raw examples against the model's input and cast them to its dtype.

    Grey images without a channel axis get one, as prepare does.

    Raises:
        DataError: the shape differs, or values cannot be the raw values the model was trained on
            (floats given to a model that takes 8-bit pixels and scales them itself).
    """
    if x.ndim == len(model.shape) and len(model.shape) == 3 and model.shape[-1] == 1:
        x = x[..., np.newaxis]
    if tuple(x.shape[1:]) != model.shape:
        raise DataError(
            f"{where} holds examples of shape {tuple(x.shape[1:])}, but the model takes "
            f"{model.shape} ({model.dtype}). The data's schema differs from what the run was "
            f"trained on; give data laid out like the training source."
        )
    target = np.dtype(model.dtype)
    if np.issubdtype(target, np.integer) and not np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(target)
        finite = np.isfinite(x).all()
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if not finite or low < info.min or high > info.max or not np.all(x == np.round(x)):
            raise DataError(
                f"{where} holds {x.dtype} values in [{low:g}, {high:g}], but the model takes raw "
                f"{model.dtype} values ({info.min}-{info.max}) as in its training source and "
                f"scales them itself. Give the raw values (e.g. pixels 0-255), not rescaled ones."
            )
    return x.astype(target, copy=False)


class InputReader:
    """Base of the readers: ``num_examples``, ``columns`` and ``chunks(batch_size)``."""

    format: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, path: Path, model: ModelInput) -> None:
        self.path = path
        self.model = model
        self.num_examples = 0
        self.columns: list[str] = []

    @classmethod
    def matches(cls, path: Path) -> bool:
        raise NotImplementedError

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        raise NotImplementedError


class ArrayInput(InputReader):
    """Readers whose examples fit in memory as one array."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        self.features = np.empty((0, *model.shape))
        self.extra: dict[str, np.ndarray] = {}

    def _set(self, features: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        self.features = conform_examples(features, self.model, str(self.path))
        self.num_examples = len(self.features)
        self.extra = {"row": np.arange(self.num_examples), **extra}
        self.columns = list(self.extra)

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        for start in range(0, self.num_examples, batch_size):
            part = slice(start, start + batch_size)
            yield InputChunk(
                self.features[part], {k: v[part].tolist() for k, v in self.extra.items()}
            )


class NpzInput(ArrayInput):
    """An .npz archive: examples in ``x`` (or ``images``, ``x_test``, …); 1-D arrays of the same
    length (ids, labels) pass through as columns."""

    format = "npz"
    description = ".npz archive with an array x"

    @classmethod
    def matches(cls, path: Path) -> bool:
        return path.is_file() and path.suffix == ".npz"

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{path} is not a readable .npz archive ({exc}). Expected a file written by "
                f"numpy.savez with the examples in an array named x."
            ) from None
        key = next((k for k in _FEATURE_KEYS if k in arrays), None)
        if key is None:
            candidates = [k for k, v in arrays.items() if v.ndim >= 2]
            key = candidates[0] if len(candidates) == 1 else None
        if key is None:
            raise DataError(
                f"{path} holds the arrays {', '.join(sorted(arrays)) or 'none'}; none is "
                f"recognisably the examples. Expected an array named x (or images) of shape "
                f"(n, {', '.join(map(str, model.shape))}). Rename it when saving."
            )
        x = arrays.pop(key)
        extra = {k: v for k, v in arrays.items() if v.ndim == 1 and len(v) == len(x)}
        self._set(x, extra)


class IdxInput(ArrayInput):
    """An MNIST-style IDX images file, or a folder holding exactly one (labels pass through)."""

    format = "idx"
    description = "IDX images file (or a folder with one)"

    @classmethod
    def matches(cls, path: Path) -> bool:
        if path.is_file():
            return bool(_IDX_FILE.search(path.name))
        return path.is_dir() and any(_IDX_FILE.search(p.name) for p in path.iterdir())

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        from dltrain.data.sources import read_idx

        images_file, labels_file = path, None
        if path.is_dir():
            found: dict[str, list[Path]] = {}
            for p in sorted(path.iterdir()):
                match = _IDX_FILE.search(p.name)
                if match and p.is_file():
                    kind = "labels" if match["dims"] == "1" else "images"
                    found.setdefault(kind, []).append(p)
            images = found.get("images", [])
            if len(images) != 1:
                raise DataError(
                    f"{path} holds {len(images)} IDX images files "
                    f"({', '.join(p.name for p in images) or 'none'}). Expected exactly one; "
                    f"pass the file itself with --input."
                )
            images_file = images[0]
            labels = found.get("labels", [])
            labels_file = labels[0] if len(labels) == 1 else None
        x = read_idx(images_file)
        extra: dict[str, np.ndarray] = {}
        if labels_file is not None:
            label_values = read_idx(labels_file)
            if label_values.shape == (len(x),):
                extra["label"] = label_values
        self._set(x, extra)


class ImageFilesInput(InputReader):
    """Image files (PNG, JPEG, BMP, GIF, WebP, TIFF) in a folder and its subfolders, or one file.

    Each is decoded, turned upright by its EXIF orientation, converted to the model's channels
    (grey, RGB or RGBA) and resized to its input size; the relative path passes through as
    ``file``. Files are decoded batch by batch, so folders larger than memory work.
    """

    format = "images"
    description = "folder of image files, or one image file"

    @classmethod
    def matches(cls, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() in IMAGE_SUFFIXES
        return path.is_dir() and any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()
        )

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        if model.kind != "image" or len(model.shape) != 3 or model.shape[-1] not in (1, 3, 4):
            raise DataError(
                f"{path} holds image files, but the model takes {model.kind} inputs of shape "
                f"{model.shape}. Give the inputs in the form the model was trained on."
            )
        from PIL import Image, UnidentifiedImageError

        if path.is_file():
            self.root, self.files = path.parent, [path]
        else:
            self.root = path
            self.files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        for file in self.files:  # headers only: a bad file fails now, before anything is written
            try:
                with Image.open(file) as image:
                    image.size  # noqa: B018 - opening parses the header
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise DataError(
                    f"{file} is not a readable image ({exc}). Remove or replace it; predict "
                    f"reads PNG, JPEG, BMP, GIF, WebP and TIFF files."
                ) from None
        self.num_examples = len(self.files)
        self.columns = ["file"]

    def _load(self, file: Path) -> np.ndarray:
        from PIL import Image, ImageOps, UnidentifiedImageError

        height, width, channels = self.model.shape
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        try:
            with Image.open(file) as opened:
                image = ImageOps.exif_transpose(opened).convert(mode)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(
                f"{file} could not be decoded ({exc}); the file is truncated or damaged. "
                f"Remove or replace it."
            ) from None
        return pixels.reshape(height, width, channels)

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        dtype = np.dtype(self.model.dtype)
        for start in range(0, self.num_examples, batch_size):
            files = self.files[start : start + batch_size]
            features = np.stack([self._load(f) for f in files]).astype(dtype)
            names = [f.relative_to(self.root).as_posix() for f in files]
            yield InputChunk(features, {"file": names})


READERS: dict[str, type[InputReader]] = {}


def register_reader(reader: type[InputReader]) -> type[InputReader]:
    """Add a reader to the registry under ``reader.format`` (usable as a class decorator)."""
    READERS[reader.format] = reader
    return reader


for _reader in (NpzInput, IdxInput, ImageFilesInput):
    register_reader(_reader)


def open_input(path: Path, model: ModelInput, fmt: str = "auto") -> InputReader:
    """Open raw inputs with the reader for ``fmt``, or the first whose ``matches`` says yes.

    Raises:
        DataError: the path is missing, empty, of an unknown format, or does not fit the model.
    """
    if not path.exists():
        raise DataError(
            f"Input {path} does not exist. Expected a file or folder of raw inputs: "
            f"{'; '.join(f'{r.format}: {r.description}' for r in READERS.values())}."
        )
    if fmt == "auto":
        reader = next((r for r in READERS.values() if r.matches(path)), None)
        if reader is None:
            listing = (
                ", ".join(sorted(p.name for p in path.iterdir())[:8])
                if path.is_dir()
                else path.name
            )
            raise DataError(
                f"Cannot tell what {path} holds ({listing or 'nothing'}). Expected one of: "
                f"{'; '.join(f'{r.format}: {r.description}' for r in READERS.values())}. Name "
                f"the format with --input-format if the file names do not say it."
            )
    elif fmt in READERS:
        reader = READERS[fmt]
    else:
        raise DataError(
            f"Input format {fmt!r} is unknown. Expected auto or one of {', '.join(READERS)}."
        )
    opened = reader(path, model)
    if opened.num_examples == 0:
        raise DataError(f"{path} holds no examples; nothing to predict.")
    return opened
