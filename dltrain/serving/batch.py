"""A JSON request body → the :class:`InputChunk` predict's readers would make of the same rows.

Tables (and texts in a column) come as a list of records, ``{"records": [...]}``, or columns,
``{"columns": {"name": [...]}}``; their values go through predict's own table conversion
(``table_arrays``: the same text canonicalisation, missing markers and float32 numbers as
prepare). Images and sequences come as ``{"instances": [...]}``, nested lists of raw values
checked by predict's ``conform_examples``; images also as ``{"images": [...]}``, base64 image
files decoded by prepare's own decoder. Anything else is a :class:`DataError` naming what was
received and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from typing import Any

import numpy as np

from dltrain.data.readers.inputs import table_arrays, table_columns_needed, table_features
from dltrain.data.readers.model_input import (
    InputChunk,
    InputReport,
    ModelInput,
    conform_examples,
)
from dltrain.errors import DataError
from dltrain.manifest import FeatureKind

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_IMAGE_PIXELS = 40_000_000  # a request's image may not announce more (a small file can)
IMAGES_FORM = ' or {"images": [...]}: image files (PNG, JPEG, …), each base64-encoded'
TABLE_FORMS = (
    'a JSON list of records ([{"column": value, …}, …]), {"records": [...]}, or '
    '{"columns": {"column": [values], …}}'
)


def read_batch(body: Any, model: ModelInput) -> tuple[InputChunk, InputReport]:
    """The request's examples as the model takes them, with their pass-through columns.

    Raises:
        DataError: a body of another form, a missing column, a value of the wrong type, or
            examples shaped unlike the model's input.
    """
    if model.kind in (FeatureKind.TABLE, FeatureKind.TEXT):
        return _table_batch(_columns_of(body, model), model)
    return _array_batch(body, model), InputReport()


def _columns_of(body: Any, model: ModelInput) -> dict[str, list[Any]]:
    """The body's rows as columns of equal length (records are turned into columns)."""
    if isinstance(body, dict) and "columns" in body:
        columns = body["columns"]
        if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
            raise DataError(
                f'"columns" must map each column name to a list of values; received '
                f"{_kind(columns)}. Send {TABLE_FORMS}."
            )
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(
                f"The columns hold different numbers of values ({_listing(lengths)}); every "
                f"column needs one value per example."
            )
        return columns
    records = body.get("records") if isinstance(body, dict) else body
    if not isinstance(records, list):
        raise DataError(f"The request body is {_kind(body)}; expected {TABLE_FORMS}.")
    names: dict[str, None] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(
                f"Record {i} is {_kind(record)}; every record is a JSON object mapping the "
                f"model's columns ({', '.join(n for n, _ in model.columns) or model.text_column}) "
                f"to values."
            )
        names.update(dict.fromkeys(record))
    needed = table_columns_needed(model, "The request")
    for i, record in enumerate(records):
        absent = [name for name in needed if name in names and name not in record]
        if absent:
            raise DataError(
                f"Record {i} lacks the column(s) {', '.join(absent)}, which other records hold. "
                f"Every record needs every column the model takes; send null for a missing "
                f"value, which the model fills as training did."
            )
    return {name: [record.get(name) for record in records] for name in names}


def _table_batch(
    columns: dict[str, list[Any]], model: ModelInput
) -> tuple[InputChunk, InputReport]:
    import pyarrow as pa

    needed = table_columns_needed(model, "The request")
    num_examples = len(next(iter(columns.values()))) if columns else 0
    if num_examples == 0:
        raise DataError(f"The request holds no examples; send {TABLE_FORMS} with at least one.")
    # identifiers the model ignores are optional here (a file for predict has them anyway)
    given = dict(columns)
    given.update({n: [None] * num_examples for n in model.passthrough if n not in columns})
    missing = [name for name in needed if name not in given]
    if missing:
        raise DataError(
            f"The request lacks the column(s) {', '.join(missing)} that the model takes (it "
            f"has: {', '.join(columns) or 'none'}). Send every column of GET /metadata's "
            f"input.columns; null marks a missing value."
        )
    markers = list(model.csv.missing_values)
    arrow = {}
    for name, dtype in needed.items():
        if dtype == "float32":
            arrow[name] = pa.array(_numbers(name, given[name], markers), pa.float64())
        else:
            arrow[name] = pa.array(_texts(name, given[name]), pa.string())
    arrays = table_arrays(arrow, markers)
    features, report = table_features(arrays, model, needed, markers)
    extra: dict[str, list[Any]] = {"row": list(range(num_examples))}
    for name, values in columns.items():  # ids and other columns pass through, as in predict
        if name not in needed:
            extra[name] = values
        elif name in model.passthrough:
            extra[name] = arrays[name].tolist()
    return InputChunk(features, extra), report


def _numbers(name: str, values: list[Any], markers: list[str]) -> list[float | None]:
    """A numeric column's values: numbers, null or a missing marker (None), numeric text."""
    out: list[float | None] = []
    for i, value in enumerate(values):
        number: float | None
        if value is None:
            number = None
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _wrong_type(name, i, value, "a number")
        elif isinstance(value, str):
            text = value.strip()
            if text in markers or not text:
                number = None
            else:
                try:
                    number = float(text)
                except ValueError:
                    raise _wrong_type(name, i, value, "a number") from None
        else:
            number = float(value)
        if number is not None and not (math.isfinite(number) and abs(number) <= FLOAT32_MAX):
            raise DataError(
                f"Column {name!r}, example {i}, holds {value!r}, which a model computing in "
                f"float32 cannot take. Send a finite number within ±{FLOAT32_MAX:.3g}, or null."
            )
        out.append(number)
    return out


def _texts(name: str, values: list[Any]) -> list[str | None]:
    """A category or text column's values: text, whole or decimal numbers (as CSV spells them),
    or null (the missing-value marker)."""
    out: list[str | None] = []
    for i, value in enumerate(values):
        if value is None or isinstance(value, str):
            out.append(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append(repr(value))  # 2.0 → "2.0", which canonical_text spells "2" as prepare
        else:
            raise _wrong_type(name, i, value, "text (a category or a text)")
    return out


def _array_batch(body: Any, model: ModelInput) -> InputChunk:
    if isinstance(body, dict) and "images" in body and model.kind == FeatureKind.IMAGE:
        return _encoded_images(body["images"], model)
    instances = body.get("instances") if isinstance(body, dict) else None
    shape = "×".join(map(str, model.shape))
    if not isinstance(instances, list) or not instances:
        raise DataError(
            f"The request body is {_kind(body)}; the model takes {model.kind} inputs of shape "
            f'{shape} ({model.dtype}). Send {{"instances": [...]}}: a list of examples, each '
            f"nested lists of raw values as in the training source"
            f"{IMAGES_FORM if model.kind == FeatureKind.IMAGE else ''}."
        )
    try:
        x = np.asarray(instances)
    except ValueError:
        x = np.asarray([], dtype=object)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(
            f'"instances" is not a regular array of numbers (ragged, or holding text or null). '
            f"Each example must be nested lists of numbers of shape {shape}."
        )
    x = conform_examples(x, model, 'The request\'s "instances"')
    return InputChunk(x, {"row": list(range(len(x)))})


def _encoded_images(images: Any, model: ModelInput) -> InputChunk:
    """Base64-encoded image files (PNG, JPEG, …), decoded as prepare decoded the training
    images: the model's channels, resized bilinearly to its input size."""
    from PIL import Image

    from dltrain.data.readers.images import decode

    if not isinstance(images, list) or not images:
        raise DataError(
            f'"images" is {_kind(images)}; expected a list of image files (PNG, JPEG, …), each '
            f"base64-encoded as a JSON string."
        )
    height, width, channels = model.shape
    pixels = []
    for i, item in enumerate(images):
        try:
            data = base64.b64decode(item if isinstance(item, str) else b"!", validate=True)
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
        except (binascii.Error, ValueError, OSError):
            raise DataError(
                f"images[{i}] is not an image file in base64 (PNG, JPEG, BMP, GIF, WebP, TIFF). "
                f"Send each file's bytes base64-encoded, as a JSON string."
            ) from None
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise DataError(
                f"images[{i}] is {size[0]}×{size[1]} pixels, above the server's limit of "
                f"{MAX_IMAGE_PIXELS:,}; the model takes {width}×{height}. Send it resized."
            )
        pixels.append(decode(io.BytesIO(data), (height, width), channels)[0])
    x = np.stack(pixels).astype(np.dtype(model.dtype))
    return InputChunk(x, {"row": list(range(len(x)))})


def _wrong_type(name: str, index: int, value: Any, expected: str) -> DataError:
    return DataError(
        f"Column {name!r}, example {index}, holds {_kind(value)} {_short(value)}, but the model "
        f"takes {expected} there. Fix the value, or send null to have it filled as training "
        f"filled missing values."
    )


def _kind(value: Any) -> str:
    names = {dict: "a JSON object", list: "a JSON list", str: "text", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _listing(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())
