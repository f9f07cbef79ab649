"""Bad tables for `dltrain prepare` (and `dltrain init`): CSV, TSV, Parquet and time series.

Each case writes its table beside the fixture's good one and a recipe ``bad``; the failed prepare
must leave both tables and the earlier prepared data/bad/ as they were.
(tests/cli/test_prepare_bad_inputs.py holds a first set of table cases; these are others.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.bad_inputs.corpus import Case, case, check, params, prepare, recipe, write

RNG = np.random.default_rng(3)
X = RNG.normal(size=60).round(3)  # not a row number: an identifier-like column is not a feature


def rows(x: str = "{x}", y: str = "{y}", n: int = 60, header: str = "x,y") -> str:
    """A table of ``n`` rows; ``x``/``y`` are templates over the row's number {x}, class {y},
    value {v} and index {i}."""
    lines = [header]
    for i in range(n):
        values = {"x": X[i], "y": "ab"[i % 2], "v": round(2.5 * i, 1), "i": i}
        lines.append(f"{x.format(**values)},{y.format(**values)}")
    return "\n".join(lines) + "\n"


def replace_row(text: str, row: int, line: str) -> str:
    lines = text.splitlines()
    lines[row] = line  # row 0 is the header
    return "\n".join(lines) + "\n"


def table(text: str | bytes, target: Any = "y", name: str = "t.csv", **data: Any) -> tuple:
    """Setup steps: the table ``name`` and a recipe reading it."""
    return write(name, text), recipe({"source": name, "target": target, **data})


def parquet(columns: dict[str, Any], target: str = "y", **data: Any) -> tuple:
    def make(path: Path) -> None:
        pq.write_table(pa.table(columns), path)

    return table(make, target, "t.parquet", **data)  # type: ignore[arg-type]


def parquet_arrays(arrays: list[pa.Array], names: list[str], target: str = "y") -> tuple:
    def make(path: Path) -> None:
        pq.write_table(pa.Table.from_arrays(arrays, names=names), path)

    return table(make, target, "t.parquet")  # type: ignore[arg-type]


CLASSES = ["ab"[i % 2] for i in range(60)]
THREE_CLASSES = "x,y\n" + "".join(f"{X[i]},{'abc'[i % 3]}\n" for i in range(60))
HALF_MISSING = "x,y\n" + "".join(f"{'' if i % 2 else X[i]},{'abc'[i % 3]}\n" for i in range(60))
SERIES = "day,temp\n" + "".join(f"2020-01-{d:02d},{d * 1.3:.1f}\n" for d in range(1, 29))


def series(text: str = SERIES, **settings: Any) -> tuple:
    return table(text, "temp", series={"lookback": 3, **settings})


CSV = [
    prepare(
        "blank lines only", ["t.csv", "holds no rows"], "check that the export", table("\n\n\n\n")
    ),
    prepare(
        "header only, tab separated",
        ["t.tsv", "no data rows"],
        "at least one row of data",
        table("x\ty\n", name="t.tsv"),
    ),
    prepare(
        "a row with too few fields",
        ["t.csv", "line 12", "1 fields where the header has 2"],
        "fix or remove the row",
        table(replace_row(rows(), 11, "0.5")),
    ),
    prepare(
        "a quote that never closes",
        ["t.csv", "quotes look unbalanced"],
        "`data.csv.quoting: false`",
        table(replace_row(rows(), 3, '"0.5,a')),
    ),
    prepare(
        "a 5 MB line",
        ["t.csv", "a row longer than 1 MB"],
        "`data.csv.quoting: false`",
        table(rows().replace("\n", '\n"' + "1" * 5_000_000 + ",a\n", 1)),
    ),
    prepare(
        "words in a column pinned numeric",
        ["Column 'z'", "row 1 (line 2): 'pqr'"],
        "declare the column categorical",
        table(rows(y="{y},pqr").replace("x,y", "x,y,z"), columns={"z": {"type": "numeric"}}),
    ),
    prepare(
        "target named in the wrong case",
        ["'Y'", "Did you mean 'y'?"],
        "Fix the name in the recipe",
        table(rows(), target="Y"),
    ),
    prepare(
        "one of two targets unknown",
        ["'q'", "columns are: x, y"],
        "Fix the name",
        table(rows(), target=["y", "q"]),
    ),
    prepare(
        "a single class",
        ["target 'y'", "single class ('a')"],
        "Check `data.target`",
        table(rows(y="a")),
    ),
    prepare(
        "a single class among missing values",
        ["single class ('a')"],
        "Check `data.target`",
        table(rows(y="{y}").replace(",b\n", ",NA\n")),
    ),
    prepare(
        "task binary on a constant target",
        ["binary", "target 'y' has 1 values"],
        "Use task multiclass or regression",
        table(rows(y="5"), task="binary"),
    ),
    prepare(
        "task regression on words",
        ["regression", "holds text (e.g. 'a')"],
        "Predict a numeric column",
        table(rows(), task="regression"),
    ),
    prepare(
        "task binary on three classes",
        ["binary", "3 classes (a, b, c)"],
        "Use task multiclass",
        table(THREE_CLASSES, task="binary"),
    ),
    prepare(
        "bytes with a .csv suffix",
        ["Cannot tell the format", "t.csv"],
        "`data.format`",
        table(b"\x00\x01\x02binary" * 100),
    ),
    prepare(
        "latin-1 read as utf-8",
        ["t.csv", "is not utf-8 text"],
        "Set `data.csv.encoding`",
        table(rows(y="caf\xe9{y}").encode("latin-1"), csv={"encoding": "utf-8"}),
    ),
    prepare(
        "skip more rows than there are",
        ["t.csv", "after skipping 1000 line(s)"],
        "check that the export",
        table(rows(), csv={"skip_rows": 1000}),
    ),
    prepare(
        "column names of the wrong count",
        ["names 1 columns", "2 fields per row"],
        "Name every column, in order",
        table(rows(), csv={"header": False, "column_names": ["a"]}),
    ),
    prepare(
        "the wrong delimiter",
        ["'y'", "Did you mean 'x,y'?"],
        "Fix the name",
        table(rows(), csv={"delimiter": ";"}),
    ),
    prepare(
        "data.columns names an unknown column",
        ["`data.columns.nope`", "'nope'"],
        "Fix the name",
        table(rows(), columns={"nope": {"type": "numeric"}}),
    ),
    prepare(
        "derived from an unknown column",
        ["`data.derived.z`", "'q'"],
        "numeric columns are: x",
        table(rows(), derived={"z": "x / q"}),
    ),
    prepare(
        "derived from the target",
        ["`data.derived.z`", "target 'y'"],
        "Derive features from feature columns only",
        table(rows(y="{v}"), derived={"z": "x / y"}),
    ),
    prepare(
        "derived replacing a column",
        ["`data.derived.x`", "source column 'x'"],
        "Give the derived column a new name",
        table(rows(), derived={"x": "x * 2"}),
    ),
    prepare(
        "text fill value for a number",
        ["`data.columns.x.fill_value`", "'abc'"],
        "Give a number",
        table(rows(), columns={"x": {"missing": "constant", "fill_value": "abc"}}),
    ),
    prepare(
        "split column unknown",
        ["`data.split.column`", "'grp'"],
        "Fix the name",
        table(rows(), split={"method": "group", "column": "grp"}),
    ),
    prepare(
        "time split without a column",
        ["`data.split.method: time`"],
        "needs `data.split.column`",
        table(rows(), split={"method": "time"}),
    ),
    prepare(
        "time split on words",
        ["`data.split.column` 'y'", "neither numbers nor dates"],
        "split another way",
        table(rows(), split={"method": "time", "column": "y"}),
    ),
    prepare(
        "test file missing",
        ["nope.csv", "`data.test_source`"],
        "fix the path",
        table(rows(), test_source="nope.csv"),
    ),
    prepare(
        "test file with an unknown class",
        ["test.csv", "'c'"],
        "fix the labels in the test file",
        (write("test.csv", "x,y\n0.5,c\n0.7,a\n"), *table(rows(), test_source="test.csv")),
    ),
    prepare(
        "three rows, one of a class",
        ["t.csv", "class(es) b have a single example"],
        "set `data.split.stratify: false`",
        table("x,y\n0.1,a\n0.7,b\n0.3,a\n"),
    ),
    prepare(
        "no column left to learn from",
        ["no column left to learn from", "y: ignore"],
        "Set a column's type",
        table(rows(y="{v}"), target="x", columns={"y": {"type": "ignore"}}),
    ),
    prepare(
        "a text target among several",
        ["'y' holds text", "(y, x)"],
        "Predict one class column at a time",
        table(rows(), target=["y", "x"]),
    ),
    prepare(
        "two thousand classes",
        ["'y'", "more than 1,000 different text values"],
        "Pick the column to predict",
        table("x,y\n" + "".join(f"{i % 7},c{i}\n" for i in range(2000))),
    ),
    prepare(
        "missing share over the bar",
        ["column 'x' is 50.0% missing", "max_missing: 0.1"],
        "relax `data.checks`",
        table(HALF_MISSING, checks={"max_missing": 0.1}),
        exit_code=1,
    ),
    prepare(
        "a warning under --strict",
        ["duplicate row(s)"],
        "run without --strict",
        table(HALF_MISSING, checks={"strict": True}),
        exit_code=1,
    ),
]

INFINITE = [  # a model computes in float32: inf, and anything past ±3.4e38, poisons it
    prepare(
        "inf in a feature",
        ["Column 'x'", "row 4 (line 5): inf"],
        "Expected finite numbers",
        table(replace_row(rows(), 4, "inf,b")),
    ),
    prepare(
        "-inf in a feature",
        ["Column 'x'", "row 8 (line 9): -inf"],
        "fix or drop those rows",
        table(replace_row(rows(), 8, "-inf,b")),
    ),
    prepare(
        "1e300 in a feature",
        ["Column 'x'", "1e+300"],
        "Expected finite numbers",
        table(replace_row(rows(), 4, "1e300,b")),
    ),
    prepare(
        "1e39 in a feature (past float32)",
        ["Column 'x'", "1e+39"],
        "finite numbers",
        table(replace_row(rows(), 2, "1e39,a")),
    ),
    prepare(
        "inf in a regression target",
        ["Column 'y'", "row 3 (line 4): inf"],
        "finite numbers",
        table(replace_row(rows(y="{v}"), 3, "0.1,inf")),
    ),
    prepare(
        "1e300 in a regression target",
        ["Column 'y'", "1e+300"],
        "finite numbers",
        table(replace_row(rows(y="{v}"), 3, "0.1,1e300")),
    ),
    prepare(
        "inf in a series",
        ["Column 'temp'", "row 5 (line 6): inf"],
        "finite numbers",
        series(SERIES.replace("2020-01-05,6.5", "2020-01-05,inf")),
    ),
    prepare(
        "inf in a Parquet column",
        ["Column 'x'", "t.parquet", "row 1: inf"],
        "finite numbers",
        parquet({"x": [float("inf"), *X[1:]], "y": CLASSES}),
    ),
]

PARQUET = [
    prepare(
        "Parquet without rows",
        ["t.parquet", "no data rows"],
        "at least one row of data",
        parquet({"x": pa.array([], pa.float64()), "y": pa.array([], pa.string())}),
    ),
    prepare(
        "Parquet target all null",
        ["'y'", "missing in every row"],
        "check `data.target`",
        parquet({"x": X, "y": pa.array([None] * 60, pa.string())}),
    ),
    prepare(
        "Parquet that is not Parquet",
        ["t.parquet", "Cannot read"],
        "Copy it again",
        table(b"PAR1 not really parquet PAR1", name="t.parquet"),
    ),
    prepare(
        "a CSV read as Parquet",
        ["t.csv", "as Parquet"],
        "set `data.format: csv`",
        table(rows(), format="parquet"),
    ),
    prepare(
        "Parquet list column",
        ["t.parquet", "x (list<element: int64>)"],
        "write one column per value",
        parquet({"x": [[1, 2]] * 60, "y": CLASSES}),
    ),
    prepare(
        "Parquet struct column",
        ["t.parquet", "x (struct<a: int64>)"],
        "write one column per value",
        parquet({"x": [{"a": 1}] * 60, "y": CLASSES}),
    ),
    prepare(
        "Parquet map column",
        ["t.parquet", "x (map<string, int64"],
        "leave those columns out",
        parquet(
            {
                "x": pa.array([[("k", 1)]] * 60, pa.map_(pa.string(), pa.int64())),
                "y": CLASSES,
            }
        ),
    ),
    prepare(
        "Parquet nested target",
        ["t.parquet", "y (list<element: int64>)"],
        "write one column per value",
        parquet({"x": X, "y": [[1]] * 60}),
    ),
    prepare(
        "Parquet duplicate column names",
        ["t.parquet", "'x' more than once"],
        "rename the duplicates",
        parquet_arrays([pa.array(X), pa.array(X), pa.array(CLASSES)], ["x", "x", "y"]),
    ),
]

SERIES_CASES = [
    prepare(
        "series time column unknown",
        ["`data.series.time_column`", "'date'"],
        "Did you mean 'day'?",
        series(time_column="date"),
    ),
    prepare(
        "series times that are not times",
        ["'someday01'", "time column 'day'"],
        "Fix or remove those rows",
        series(SERIES.replace("2020-01-", "someday"), time_column="day"),
    ),
    prepare(
        "series target of words",
        ["target 'temp'", "['hot']"],
        "pick numeric column(s)",
        series("day,temp\n" + "".join(f"2020-01-{d:02d},hot\n" for d in range(1, 29))),
    ),
    prepare(
        "series with one time repeated",
        ["27 time(s) appear more than once", "'day'"],
        "aggregate the duplicates first",
        series("day,temp\n" + "".join(f"2020-01-01,{d}\n" for d in range(1, 29))),
    ),
    prepare(
        "series feature unknown",
        ["`data.series.features`", "'rain'"],
        "Fix the name",
        series(features=["rain"]),
    ),
    prepare(
        "series horizon longer than the series", ["horizon 40"], "`data.series", series(horizon=40)
    ),
]

INIT = [
    case(
        "init: Parquet list column",
        "init t.parquet --target y -o new.yaml",
        ["t.parquet", "x (list<element: int64>)"],
        "write one column per value",
        write(
            "t.parquet", lambda p: pq.write_table(pa.table({"x": [[1]] * 20, "y": CLASSES[:20]}), p)
        ),
    ),
    case(
        "init: target all missing",
        "init t.csv --target y -o new.yaml",
        ["'y'", "missing in every row"],
        "check `data.target`",
        write("t.csv", "x,y\n" + "1,\n2,NA\n3,?\n" * 10),
    ),
    case(
        "init: header only",
        "init t.csv -o new.yaml",
        ["t.csv", "no data rows"],
        "at least one row of data",
        write("t.csv", "x,y\n"),
    ),
    case(
        "init: unknown target",
        "init good.csv --target prise -o new.yaml",
        ["'prise'", "columns are: x, z, y"],
        "Fix the name",
    ),
    case(
        "init: no target for a table",
        "init good.csv -o new.yaml",
        ["good.csv"],
        "pass --target COLUMN",
    ),
    case(
        "init: task against the target",
        "init good.csv --target z --task regression -o n.yaml",
        ["regression", "target 'z' holds text"],
        "Predict a numeric column",
    ),
    case(
        "init: a spreadsheet",
        "init t.xlsx -o new.yaml",
        ["t.xlsx", "Cannot tell the format"],
        "`data.format`",
        write("t.xlsx", b"PK\x03\x04 a spreadsheet"),
    ),
    case(
        "init: source missing",
        "init nope.csv -o new.yaml",
        ["nope.csv", "does not exist"],
        "Fix `data.source`",
    ),
    case(
        "init: recipe already there",
        "init good.csv --target y",
        ["dltrain.yaml already exists"],
        "Pass --force to replace it",
    ),
    case(
        "init: a bad recipe name",
        "init good.csv --target y --name ../x -o new.yaml",
        ["`name`", "'../x'"],
        "String should match",
    ),
]


@pytest.mark.parametrize("item", params(CSV + INFINITE + PARQUET + SERIES_CASES + INIT))
def test_bad_table(item: Case, source_project: Path) -> None:
    check(item, source_project)
