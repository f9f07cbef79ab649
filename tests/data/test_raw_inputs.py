"""The readers predict feeds models with: each format, auto-detection, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltrain.data.readers.inputs import open_input
from dltrain.data.readers.model_input import ModelInput, conform_examples
from dltrain.errors import DataError
from dltrain.recipe.data import CsvSpec

GREY = ModelInput(kind="image", shape=(8, 8, 1), dtype="uint8")
TABLE = ModelInput(
    kind="table",
    columns=(("house_id", "string"), ("rooms", "float32"), ("district", "string")),
    targets=("price",),
    passthrough=("house_id",),
)


def collect(reader, batch_size: int = 2):  # type: ignore[no-untyped-def]
    chunks = list(reader.chunks(batch_size))
    assert all(len(c) <= batch_size for c in chunks)
    return chunks


def test_table_reader_feeds_raw_columns_and_passes_the_rest_through(tmp_path: Path) -> None:
    path = tmp_path / "houses.csv"
    path.write_text(
        "house_id,rooms,district,price,note\n"
        "h1,3,  north ,100,a\n"
        "h2,,south,200,b\n"  # an empty number: NaN, which the model imputes
        "h3,5,moon,300,c\n"  # an unseen category: the model's out-of-vocabulary bucket
    )
    reader = open_input(path, TABLE)
    assert reader.format == "table" and reader.num_examples == 3
    chunks = collect(reader)
    features = chunks[0].features
    assert isinstance(features, dict) and set(features) == {"house_id", "rooms", "district"}
    assert features["rooms"].dtype == np.float32 and features["district"].tolist() == [
        "north",  # stripped, as prepare stripped the training source
        "south",
    ]
    assert np.isnan(features["rooms"][1])
    assert chunks[0].columns["house_id"] == ["h1", "h2"]  # an identifier passes through
    assert chunks[1].columns["price"] == ["300"] and chunks[1].columns["note"] == ["c"]
    assert chunks[1].columns["row"] == [2]


def test_headerless_table_without_its_target_column(tmp_path: Path) -> None:
    model = ModelInput(
        kind="table",
        columns=(("rooms", "float32"), ("district", "string")),
        targets=("price",),
        csv=CsvSpec(header=False, column_names=["rooms", "district", "price"]),
    )
    path = tmp_path / "rows.data"
    path.write_text("3, north\n4, south\n")
    reader = open_input(path, model)
    (chunk,) = collect(reader, 10)
    assert chunk.features["rooms"].tolist() == [3.0, 4.0]  # type: ignore[index]


def test_table_missing_a_model_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "houses.csv"
    path.write_text("house_id,district\nh1,north\n")
    with pytest.raises(DataError, match="lacks the column"):
        open_input(path, TABLE)


def test_text_lines_and_text_tables(tmp_path: Path) -> None:
    model = ModelInput(kind="text", text_column="message", targets=("label",))
    lines = tmp_path / "messages.txt"
    lines.write_text("win a prize now\n\n  see you at lunch  \n")
    reader = open_input(lines, model)
    assert reader.format == "lines"
    (chunk,) = collect(reader, 10)
    assert list(chunk.features) == ["win a prize now", "see you at lunch"]
    assert chunk.columns["line"] == [1, 3]
    table = tmp_path / "messages.csv"
    table.write_text("id,message\n7,hello there\n")
    (chunk,) = collect(open_input(table, model), 10)
    assert list(chunk.features) == ["hello there"] and chunk.columns["id"] == ["7"]


def test_image_folder_reader_converts_and_resizes(tmp_path: Path) -> None:
    Image.fromarray(np.full((16, 20, 3), 200, np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "small.bmp")
    reader = open_input(tmp_path, GREY)
    (chunk,) = collect(reader, 10)
    assert isinstance(chunk.features, np.ndarray)
    assert chunk.features.shape == (2, 8, 8, 1) and chunk.features.dtype == np.uint8
    assert chunk.columns["file"] == ["big.png", "small.bmp"]
    assert chunk.features[1].max() == 7 and chunk.features[0].min() == 200


def test_conform_examples_refuses_what_the_model_cannot_take() -> None:
    assert conform_examples(np.zeros((2, 8, 8), np.uint8), GREY, "x").shape == (2, 8, 8, 1)
    assert conform_examples(np.full((1, 8, 8), 255.0), GREY, "x").dtype == np.uint8
    with pytest.raises(DataError, match="schema differs"):
        conform_examples(np.zeros((2, 9, 8), np.uint8), GREY, "x")
    with pytest.raises(DataError, match="raw uint8 values"):
        conform_examples(np.full((1, 8, 8), 0.5), GREY, "x")
    with pytest.raises(DataError, match="raw uint8 values"):
        conform_examples(np.full((1, 8, 8), 300.0), GREY, "x")


def test_unknown_things_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(DataError, match="Cannot tell what"):
        open_input(tmp_path / "notes.md", GREY)
    with pytest.raises(DataError, match="format 'xml' is unknown"):
        open_input(tmp_path / "notes.md", GREY, "xml")
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no examples"):
        open_input(empty, GREY)
