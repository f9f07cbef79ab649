"""Raw inputs for predict (and evaluate --data), read by a registry of readers keyed by format.

Each reader turns a file or folder into batches of examples shaped as the model takes them,
plus pass-through columns (ids, file names) that predict copies into its output:

- ``npz``: an array of examples (``x``), with optional 1-D id arrays;
- ``idx``: an MNIST-style images file (or a folder with one);
- ``images``: a folder of PNG/JPEG/… files, or one file;
- ``table``: a CSV/TSV or Parquet file with the source's columns (tables, and texts in a column),
  read with the run's own ``data.csv`` settings; columns the model does not take pass through;
- ``lines``: a text file holding one text per line (text models).

They share prepare's own pieces (``formats``, ``idx``, ``arrays``, ``images``, ``tables``), so
a file prepare reads is one predict reads, the same way. A new data kind plugs in with
``register_reader``: a class with ``matches(path, model)`` and ``chunks(batch_size)``. The model
carries its own preprocessing (scaling, imputation, vocabularies with an out-of-vocabulary
bucket), so readers hand it raw values exactly as the training source had them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.data.readers.arrays import NPZ_EXAMPLE_KEYS, load_npz
from dltrain.data.readers.formats import IMAGE_SUFFIXES, PARQUET_SUFFIXES, TABLE_SUFFIXES
from dltrain.data.readers.idx import parse_idx_name, read_idx
from dltrain.data.readers.images import check_image, decode
from dltrain.data.readers.model_input import (
    ArrayInput,
    Features,
    InputChunk,
    InputReader,
    InputReport,
    ModelInput,
    report_table,
)
from dltrain.errors import ConversionError, DataError
from dltrain.manifest import FeatureKind


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
        arrays = load_npz(path, "save it again with the examples in an array named x")
        key = next((k for k in NPZ_EXAMPLE_KEYS if k in arrays), None)
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
            return parse_idx_name(path.name) is not None
        return path.is_dir() and any(parse_idx_name(p.name) for p in path.iterdir())

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        images_file, labels_file = path, None
        if path.is_dir():
            found: dict[str, list[Path]] = {}
            for p in sorted(path.iterdir()):
                name = parse_idx_name(p.name)
                if name is not None and p.is_file():
                    found.setdefault("labels" if name.labels else "images", []).append(p)
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
        if (
            model.kind != FeatureKind.IMAGE
            or len(model.shape) != 3
            or model.shape[-1] not in (1, 3, 4)
        ):
            raise DataError(
                f"{path} holds image files, but the model takes {model.kind} inputs of shape "
                f"{model.shape}. Give the inputs in the form the model was trained on."
            )
        if path.is_file():
            self.root, self.files = path.parent, [path]
        else:
            self.root = path
            self.files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        for file in self.files:  # headers only: a bad file fails now, before anything is written
            check_image(file)
        self.num_examples = len(self.files)
        self.columns = ["file"]

    def chunks(self, batch_size: int) -> Iterator[InputChunk]:
        dtype = np.dtype(self.model.dtype)
        height, width, channels = self.model.shape
        for start in range(0, self.num_examples, batch_size):
            files = self.files[start : start + batch_size]
            # prepare's own decoding: the same pixels as the images the model was trained on
            pixels = [decode(f, (height, width), channels)[0] for f in files]
            names = [f.relative_to(self.root).as_posix() for f in files]
            yield InputChunk(np.stack(pixels).astype(dtype), {"file": names})


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
        if not path.is_file() or model.kind not in (FeatureKind.TABLE, FeatureKind.TEXT):
            return False
        suffix = path.suffix.lower()
        if model.kind == FeatureKind.TEXT and suffix == ".txt":
            return False  # one text per line: the lines reader
        return suffix in (TABLE_SUFFIXES - {""}) | PARQUET_SUFFIXES

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path, model)
        import pyarrow as pa

        needed = table_columns_needed(model, str(path))
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
        markers = table.missing_markers(model.csv)
        try:
            batches = list(table.batches(types))
        except ConversionError as exc:
            raise DataError(
                f"Column {exc.column!r} of {path} holds the text {exc.value!r}, but the model "
                f"takes numbers there (the column was numeric in training). Fix the value, or "
                f"leave the cell empty to have it filled as training filled missing values."
            ) from None
        columns = {}
        for name in table.columns:
            parts = [batch.column(name) for batch in batches]
            columns[name] = pa.concat_arrays(parts) if parts else pa.array([], types[name])
        arrays = table_arrays(columns, markers)
        self.features, self.report = table_features(arrays, model, needed, markers)
        self.extra = {"row": np.arange(sum(batch.num_rows for batch in batches))}
        self.extra.update(
            {n: v for n, v in arrays.items() if n not in needed or n in model.passthrough}
        )
        self.num_examples = len(self.extra["row"])
        self.columns = list(self.extra)

    @staticmethod
    def _open(path: Path, model: ModelInput) -> Any:
        from dltrain.data.readers.tables import open_table
        from dltrain.recipe.data import DataFormat

        spec = model.csv
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


def table_columns_needed(model: ModelInput, where: str) -> dict[str, str]:
    """The columns a table (or a JSON batch of rows) must hold for ``model``, with their dtypes:
    float32 for numbers, string for categories and texts.

    Raises:
        DataError: the model takes arrays (images, sequences), not table rows.
    """
    if model.kind == FeatureKind.TABLE:
        return dict(model.columns)
    if model.kind == FeatureKind.TEXT and model.text_column:
        return {model.text_column: "string"}
    raise DataError(
        f"{where} is a table, but the model takes {model.kind} inputs of shape "
        f"{model.shape}. Give the inputs in the form the model was trained on."
    )


def table_arrays(columns: dict[str, Any], markers: list[str]) -> dict[str, np.ndarray]:
    """Arrow columns (float64 numbers, or strings) as the model takes them: text exactly as
    prepare read the training source's (see ``canonical_text``), numbers as float32 with NaN
    for missing. predict reads files through here and serve reads JSON rows, so they agree.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from dltrain.data.readers.text_values import canonical_text, null_marker

    arrays: dict[str, np.ndarray] = {}
    for name, column in columns.items():
        if column.type == pa.string():
            column = canonical_text(column, null_marker(markers))
            arrays[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        else:
            column = pc.cast(column, pa.float32()).fill_null(np.nan)
            arrays[name] = np.asarray(column.to_numpy(zero_copy_only=False), np.float32)
    return arrays


def table_features(
    arrays: dict[str, np.ndarray], model: ModelInput, needed: dict[str, str], markers: list[str]
) -> tuple[Features, InputReport]:
    """The model's features among ``arrays`` (one array for a text model), and the report of
    their missing values and unseen categories."""
    if model.kind == FeatureKind.TEXT:
        return arrays[next(iter(needed))], InputReport()
    features = {name: arrays[name] for name in needed}
    return features, report_table(features, model, frozenset(markers))


class TextLinesInput(ArrayInput):
    """A UTF-8 text file with one text per line (blank lines skipped), for text models."""

    format = "lines"
    description = "text file with one text per line"

    @classmethod
    def matches(cls, path: Path, model: ModelInput) -> bool:
        return (
            path.is_file()
            and model.kind == FeatureKind.TEXT
            and path.suffix.lower() in (".txt", "")
        )

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
