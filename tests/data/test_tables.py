"""Reading real-world tables: delimiters, headers, quotes, BOMs, line endings, Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dltrain.data.readers.tables import open_table, read_all
from dltrain.errors import DataError
from dltrain.recipe.data import CsvSpec, DataFormat


def read(path: Path, **options: object) -> tuple[list[str], dict[str, list[object]]]:
    table = open_table(path, DataFormat.AUTO, CsvSpec.model_validate(options))
    types = {n: pa.string() for n in table.columns}
    return table.columns, read_all(table, types).to_pydict()


def test_bom_crlf_quotes_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbf"Date","Temp"\r\n"1981-01-01",20.7\r\n"1981-01-02","17,9"')
    columns, values = read(path)
    assert columns == ["Date", "Temp"]  # the BOM is not part of the first name
    assert values == {"Date": ["1981-01-01", "1981-01-02"], "Temp": ["20.7", "17,9"]}


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    # Decimal commas, as European exports write them: the comma is not the delimiter.
    path = tmp_path / "t.txt"
    rows = ["price", "n", "c"], ["1,5", "2", "x"], ["2,5", "3", "y"], ["7", "4", "z"]
    path.write_text("\n".join(delimiter.join(r) for r in rows) + "\n")
    columns, values = read(path)
    assert columns == ["price", "n", "c"] and values["price"] == ["1,5", "2,5", "7"]


def test_headerless_file_gets_numbered_columns_or_given_names(tmp_path: Path) -> None:
    path = tmp_path / "t.data"
    path.write_text("39, State-gov, <=50K\n50, Private, >50K\n")
    assert read(path)[0] == ["column_1", "column_2", "column_3"]
    columns, values = read(path, column_names=["age", "work", "income"])
    assert columns == ["age", "work", "income"] and values["age"] == ["39", "50"]


def test_stray_quotes_switch_quoting_off(tmp_path: Path) -> None:
    # SMS spam: a '"' opens inside a message and never closes; CSV quoting would swallow lines.
    path = tmp_path / "sms"
    path.write_text('ham\tSay "hi to him\nspam\tWIN now\nham\tok "fine" then\n')
    columns, values = read(path)
    assert values["column_2"] == ['Say "hi to him', "WIN now", 'ok "fine" then']


def test_skip_rows_drops_a_junk_first_line(tmp_path: Path) -> None:
    path = tmp_path / "adult.test"
    path.write_text("|1x3 Cross validator\n25, Private, <=50K.\n38, Private, >50K.\n")
    _, values = read(path, skip_rows=1, column_names=["age", "work", "income"])
    assert values["income"] == [" <=50K.", " >50K."]  # stripping is prepare's job


def test_parquet_is_read_with_the_same_interface(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.5, None], "c": ["a", "b"]}), tmp_path / "t.parquet")
    table = open_table(tmp_path / "t.parquet", DataFormat.AUTO, CsvSpec())
    assert table.format == DataFormat.PARQUET
    data = read_all(table, {"x": pa.float64(), "c": pa.string()})
    assert np.isnan(data["x"].to_numpy()[1]) and data["c"].to_pylist() == ["a", "b"]


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="holds no rows"):
        read(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b,c\n")
    with pytest.raises(DataError, match="no data rows"):
        read(tmp_path / "header.csv")


def test_ragged_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(DataError) as caught:
        read(path)
    assert (
        "line 3" in caught.value.message
        and "3 fields where the header has 2" in caught.value.message
    )


def test_a_windows_1252_file_is_detected_and_said(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes("name,city\nA,Zürich\nB,Málaga\nC,€ office\n".encode("cp1252"))
    from dltrain.data.readers.formats import detect_format

    assert detect_format(path) is DataFormat.CSV  # not refused as "cannot tell the format"
    table = open_table(path, DataFormat.AUTO, CsvSpec())
    assert table.csv is not None and table.csv.encoding == "cp1252"
    assert any("read as cp1252" in note for note in table.csv.notes)
    _, columns = read(path)
    assert columns["city"] == ["Zürich", "Málaga", "€ office"]
    # a named encoding is used as given, without `format: csv`
    assert read(path, encoding="latin-1")[1]["city"][:2] == ["Zürich", "Málaga"]
    with pytest.raises(DataError, match="not an encoding Python knows"):
        open_table(path, DataFormat.AUTO, CsvSpec(encoding="klingon"))
    with pytest.raises(DataError, match=r"not utf-8 text.*data\.csv\.encoding"):
        open_table(path, DataFormat.AUTO, CsvSpec(encoding="utf-8"))


def test_every_field_quoted_with_empty_quotes_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('"id","score","city"\n"a","1.5","x"\n"b","","y"\n"c","NA",""\n')
    table = open_table(path, DataFormat.AUTO, CsvSpec())
    batch = next(table.batches({"id": pa.string(), "score": pa.float64(), "city": pa.string()}))
    assert batch.column("score").to_pylist() == [1.5, None, None]
    assert batch.column("city").to_pylist() == ["x", "y", ""]  # markers stay text for cleaning


def test_parquet_integers_beyond_2_to_the_53_read_as_numbers(tmp_path: Path) -> None:
    # float64 (and the model's float32) hold them approximately; a safe cast refused the file
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"n": pa.array([2**62, 1], pa.int64())}), path)
    table = open_table(path, DataFormat.AUTO, CsvSpec())
    values = read_all(table, {"n": pa.float64()}).column("n").to_pylist()
    assert values == [float(2**62), 1.0]
