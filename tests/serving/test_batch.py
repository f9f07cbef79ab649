"""A JSON body → the model's inputs (no TensorFlow): the forms taken, the values refused, and the
same conversion as predict's table reader (text canonicalised, markers and null as missing)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dltrain.data.readers.model_input import ModelInput
from dltrain.errors import DataError
from dltrain.manifest import FeatureKind
from dltrain.serving.batch import read_batch

TABLE = ModelInput(
    kind=FeatureKind.TABLE,
    columns=(("house_id", "string"), ("rooms", "float32"), ("district", "string")),
    passthrough=("house_id",),
    vocabularies={"district": frozenset({"north", "south", "2", ""})},
)
IMAGES = ModelInput(kind=FeatureKind.IMAGE, shape=(2, 2, 1), dtype="uint8")


def test_records_and_columns_make_the_same_features() -> None:
    records = [
        {"house_id": "h1", "rooms": 3, "district": " north ", "extra": 7},
        {"house_id": "h2", "rooms": None, "district": 2.0, "extra": 8},
        {"house_id": "h3", "rooms": "NA", "district": None, "extra": 9},
        {"house_id": "h4", "rooms": "4.5", "district": "mars", "extra": 10},
    ]
    chunk, report = read_batch(records, TABLE)
    columns = {k: [r[k] for r in records] for k in records[0]}
    again, _ = read_batch({"columns": columns}, TABLE)
    assert isinstance(chunk.features, dict) and isinstance(again.features, dict)
    np.testing.assert_array_equal(chunk.features["rooms"], [3.0, np.nan, np.nan, 4.5])
    # trimmed, 2.0 spelled 2 and null as the missing marker, as prepare reads a CSV cell
    assert chunk.features["district"].tolist() == ["north", "2", "", "mars"]
    assert chunk.features["rooms"].dtype == np.float32
    for name in chunk.features:
        np.testing.assert_array_equal(chunk.features[name], again.features[name])
    assert chunk.columns == {
        "row": [0, 1, 2, 3],
        "house_id": ["h1", "h2", "h3", "h4"],
        "extra": [7, 8, 9, 10],
    }
    reports = {c.column: (c.missing, c.unseen) for c in report.columns}
    assert reports == {"rooms": (2, 0), "district": (1, 1)}


def test_an_identifier_the_model_ignores_may_be_left_out() -> None:
    chunk, _ = read_batch({"records": [{"rooms": 1, "district": "south"}]}, TABLE)
    assert isinstance(chunk.features, dict)
    assert chunk.features["house_id"].tolist() == [""]
    assert len(chunk) == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"records": "x"}, "expected a JSON list of records"),
        ([1, 2], "Record 0 is a number"),
        ([{"rooms": 1}], "lacks the column(s) district"),
        ([{"rooms": 1, "district": "a"}, {"district": "b"}], "Record 1 lacks the column(s) rooms"),
        ([{"rooms": True, "district": "a"}], "'rooms', example 0, holds a boolean true"),
        ([{"rooms": "many", "district": "a"}], 'holds text "many", but the model takes a number'),
        ([{"rooms": 1e300, "district": "a"}], "float32 cannot take"),
        ([{"rooms": 1, "district": {"a": 1}}], "takes text"),
        ({"columns": {"rooms": [1], "district": ["a", "b"]}}, "rooms 1, district 2"),
        ({"columns": {"rooms": 1}}, '"columns" must map'),
        ({"columns": {}}, "holds no examples"),
    ],
)
def test_bad_table_bodies_are_refused_by_name(body: Any, needle: str) -> None:
    with pytest.raises(DataError) as caught:
        read_batch(body, TABLE)
    assert needle in caught.value.message


def test_instances_are_checked_as_predict_checks_arrays() -> None:
    chunk, _ = read_batch({"instances": [[[0, 255], [3, 4]]]}, IMAGES)  # a grey image, no channel
    assert isinstance(chunk.features, np.ndarray)
    assert chunk.features.shape == (1, 2, 2, 1) and chunk.features.dtype == np.uint8
    for body, needle in (
        ([[0]], 'Send {"instances": [...]}'),
        ({"instances": [[[0, 1], [2]]]}, "not a regular array of numbers"),
        ({"instances": [[[0.5, 1], [2, 3]]]}, "raw uint8 values"),
        ({"instances": [[0, 1, 2, 3]]}, "examples of shape (4,)"),
    ):
        with pytest.raises(DataError) as caught:
            read_batch(body, IMAGES)
        assert needle in caught.value.message, caught.value.message


def test_base64_images_are_decoded_as_predict_decodes_files(tmp_path: Path) -> None:
    from dltrain.data.readers.inputs import ImageFilesInput

    rgb = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    encoded = base64.b64encode((tmp_path / "a.png").read_bytes()).decode()
    grey = ModelInput(kind=FeatureKind.IMAGE, shape=(4, 4, 1), dtype="uint8")
    chunk, _ = read_batch({"images": [encoded, encoded]}, grey)
    from_file = next(ImageFilesInput(tmp_path / "a.png", grey).chunks(8)).features
    assert isinstance(chunk.features, np.ndarray) and chunk.features.shape == (2, 4, 4, 1)
    np.testing.assert_array_equal(chunk.features[0], np.asarray(from_file)[0])
    for body, needle in (
        ({"images": ["not base64!"]}, "images[0] is not an image file in base64"),
        ({"images": [base64.b64encode(b"plain text").decode()]}, "images[0] is not an image"),
        ({"images": [7]}, "images[0] is not an image"),
        ({"images": "abc"}, '"images" is text; expected a list'),
    ):
        with pytest.raises(DataError) as caught:
            read_batch(body, grey)
        assert needle in caught.value.message, caught.value.message
