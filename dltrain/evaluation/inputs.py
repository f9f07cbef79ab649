"""Raw inputs for predict (and evaluate --data), read by a registry of readers keyed by format.

Each reader turns a file or folder into batches of examples shaped as the model takes them,
plus pass-through columns (ids, file names) that predict copies into its output:

- ``npz``: an array of examples (``x``), with optional 1-D id arrays;
- ``idx``: an MNIST-style images file (or a folder with one);
- ``images``: a folder of PNG/JPEG/… files, or one file;
- ``table``: a CSV/TSV or Parquet file with the source's columns (tables, and texts in a column),
  read with the run's own ``data.csv`` settings; columns the model does not take pass through;
- ``lines``: a text file holding one text per line (text models).

A new data kind plugs in with ``register_reader``: a class with ``matches(path, model)`` and
``chunks(batch_size)``. The model carries its own preprocessing (scaling, imputation,
vocabularies with an out-of-vocabulary bucket), so readers hand it raw values exactly as the
training source had them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dltrain.errors import DataError
from dltrain.manifest import FeatureKind, Manifest, TableFeatures, TextFeatures

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_FEATURE_KEYS = ("x", "images", "x_test", "x_train", "inputs")
_IDX_FILE = re.compile(r"[-_.]idx(?P<dims>\d)[-_.]", re.IGNORECASE)  # train-images-idx3-ubyte.gz


@dataclass(frozen=True)
class ModelInput:
    """What one example looks like to the model.

    Attributes:
        kind: image, table, text or sequence (the manifest's ``features.kind``).
        shape: one example's array shape (images, sequences); () for tables and texts.
        dtype: the array's dtype.
        columns: tables: (name, dtype) of every raw input column, in order.
        text_column: texts: the column holding the text.
        targets: the source's target column(s), passed through when an input holds them.
        csv: the run's ``data.csv`` settings, so a table is read as the source was.
        passthrough: tables: input columns the model ignores (identifiers), copied to the
            output as well.
    """

    kind: FeatureKind
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    columns: tuple[tuple[str, str], ...] = ()
    text_column: str | None = None
    targets: tuple[str, ...] = ()
    csv: dict[str, Any] | None = None
    passthrough: tuple[str, ...] = ()

    @classmethod
    def from_manifest(cls, manifest: Manifest, csv: dict[str, Any] | None = None) -> ModelInput:
        features = manifest.features
        columns: tuple[tuple[str, str], ...] = ()
        passthrough: tuple[str, ...] = ()
        if isinstance(features, TableFeatures):
            columns = tuple((c.name, c.dtype) for c in features.columns)
            passthrough = tuple(features.passthrough)
        return cls(
            kind=features.kind,
            shape=tuple(getattr(features, "shape", ())),
            dtype=str(getattr(features, "dtype", "float32")),
            columns=columns,
            text_column=features.column if isinstance(features, TextFeatures) else None,
            targets=tuple(manifest.target_names),
            csv=csv,
            passthrough=passthrough,
        )


Features = np.ndarray | dict[str, np.ndarray]


@dataclass
class InputChunk:
    """A batch of examples plus the columns that pass through to the output."""

    features: Features
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        if isinstance(self.features, dict):
            return len(next(iter(self.features.values()))) if self.features else 0
        return len(self.features)


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
    def matches(cls, path: Path, model: ModelInput) -> bool:
        """Whether this reader takes ``path`` for ``model`` (auto-detection)."""
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
    def matches(cls, path: Path, model: ModelInput) -> bool:
        return path.is_file() and path.suffix == ".npz"

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        from dltrain.data.sources import load_npz

        arrays = load_npz(path, "save it again with the examples in an array named x")
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
    def matches(cls, path: Path, model: ModelInput) -> bool:
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

    Each is decoded as prepare decodes training images (converted to the model's channels,
    resized bilinearly to its input size); the relative path passes through as ``file``. Files
    are decoded batch by batch, so folders larger than memory work.
    """

    format = "images"
    description = "folder of image files, or one image file"

    @classmethod
    def matches(cls, path: Path, model: ModelInput) -> bool:
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
        from PIL import Image, UnidentifiedImageError

        height, width, channels = self.model.shape
        if channels in (1, 3):
            # exactly prepare's decoding (draft mode, bilinear resize): the same pixels as the
            # images the model was trained on
            from dltrain.data.images import decode

            return decode(file, (height, width), channels)[0]
        try:
            with Image.open(file) as opened:
                image = opened.convert("RGBA")
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


class TableInput(InputReader):
    """A CSV/TSV or Parquet table with the source's columns, read with the run's ``data.csv``
    settings (delimiter, header or column names, missing-value markers).

    Every column the model takes must be there; the rest (ids, the target) pass through. Text
    is stripped of surrounding spaces as prepare did; empty numbers and missing-value markers
    become NaN, which the model imputes as training did; unseen categories go to the model's
    out-of-vocabulary bucket.
    """

    format = "table"
    description = "CSV/TSV or Parquet table with the source's columns"

    @classmethod
    def matches(cls, path: Path, model: ModelInput) -> bool:
        from dltrain.data.tables import TABLE_SUFFIXES

        if not path.is_file() or model.kind not in ("table", "text"):
            return False
        suffix = path.suffix.lower()
        if model.kind == "text" and suffix == ".txt":
            return False  # one text per line: the lines reader
        return suffix in (TABLE_SUFFIXES - {""}) | {".parquet", ".pq"}

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        import pyarrow as pa
        import pyarrow.compute as pc

        if model.kind == "table":
            needed = dict(model.columns)
        elif model.kind == "text" and model.text_column:
            needed = {model.text_column: "string"}
        else:
            raise DataError(
                f"{path} is a table, but the model takes {model.kind} inputs of shape "
                f"{model.shape}. Give the inputs in the form the model was trained on."
            )
        table = self._open(path, model)
        missing = [name for name in needed if name not in table.columns]
        if missing:
            raise DataError(
                f"{path} lacks the column(s) {', '.join(missing)} that the model takes (it has: "
                f"{', '.join(table.columns)}). The data's schema differs from the run's; give "
                f"a table with the training source's columns."
            )
        types = {name: pa.string() for name in table.columns}
        for name, dtype in needed.items():
            types[name] = pa.float64() if dtype == "float32" else pa.string()
        batches = list(table.batches(types))
        arrays: dict[str, Any] = {}
        for name in table.columns:
            parts = [batch.column(name) for batch in batches]
            column = pa.concat_arrays(parts) if parts else pa.array([], types[name])
            if types[name] == pa.string():
                column = pc.utf8_trim_whitespace(column).fill_null("")
                arrays[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
            else:
                column = pc.cast(column, pa.float32()).fill_null(np.nan)
                arrays[name] = np.asarray(column.to_numpy(zero_copy_only=False), np.float32)
        self.features: Features = {name: arrays[name] for name in needed}
        if model.kind == "text":
            self.features = arrays[next(iter(needed))]
        self.extra = {"row": np.arange(sum(batch.num_rows for batch in batches))}
        self.extra.update(
            {n: v for n, v in arrays.items() if n not in needed or n in model.passthrough}
        )
        self.num_examples = len(self.extra["row"])
        self.columns = list(self.extra)

    @staticmethod
    def _open(path: Path, model: ModelInput) -> Any:
        from dltrain.data.tables import open_table
        from dltrain.recipe.data import CsvSpec, DataFormat

        spec = CsvSpec.model_validate(model.csv or {})
        try:
            return open_table(path, DataFormat.AUTO, spec)
        except DataError:
            if not (spec.column_names and model.targets):
                raise
            # a headerless file like the source, but without the target column(s)
            names = [n for n in spec.column_names if n not in model.targets]
            return open_table(
                path, DataFormat.AUTO, spec.model_copy(update={"column_names": names})
            )

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        for start in range(0, self.num_examples, batch_size):
            part = slice(start, start + batch_size)
            features = self.features
            batch = (
                {k: v[part] for k, v in features.items()}
                if isinstance(features, dict)
                else features[part]
            )
            yield InputChunk(batch, {k: v[part].tolist() for k, v in self.extra.items()})


class TextLinesInput(ArrayInput):
    """A UTF-8 text file with one text per line (blank lines skipped), for text models."""

    format = "lines"
    description = "text file with one text per line"

    @classmethod
    def matches(cls, path: Path, model: ModelInput) -> bool:
        return path.is_file() and model.kind == "text" and path.suffix.lower() in (".txt", "")

    def __init__(self, path: Path, model: ModelInput) -> None:
        InputReader.__init__(self, path, model)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"Cannot read {path} as UTF-8 text ({exc}). Expected one text per line."
            ) from None
        kept = [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]
        self.features = np.asarray([text for _, text in kept], dtype=object)
        self.num_examples = len(kept)
        self.extra = {"line": np.asarray([number for number, _ in kept])}
        self.columns = ["line"]


READERS: dict[str, type[InputReader]] = {}


def register_reader(reader: type[InputReader]) -> type[InputReader]:
    """Add a reader to the registry under ``reader.format`` (usable as a class decorator)."""
    READERS[reader.format] = reader
    return reader


for _reader in (NpzInput, IdxInput, ImageFilesInput, TableInput, TextLinesInput):
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
        reader = next((r for r in READERS.values() if r.matches(path, model)), None)
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
