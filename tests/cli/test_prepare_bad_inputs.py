"""Bad input to `dltrain prepare`: one paragraph naming the file, row or column and the fix,
exit 2, no traceback, and nothing left where a later command would pick it up."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from dltrain.cli import app
from tests.conftest import synthetic_images, write_idx

runner = CliRunner()


def write_recipe(folder: Path, data: dict[str, Any]) -> None:
    recipe = {"name": "bad", "seed": 1, "data": data, "model": {"family": "mlp", "units": [4]}}
    (folder / "dltrain.yaml").write_text(yaml.safe_dump(recipe))


def csv_source(text: str, name: str = "t.csv") -> Callable[[Path], dict[str, Any]]:
    def make(folder: Path) -> dict[str, Any]:
        (folder / name).write_text(text)
        return {"source": name, "target": "y"}

    return make


def ragged(folder: Path) -> dict[str, Any]:
    (folder / "t.csv").write_text("x,y\n" + "1,a\n" * 20 + "2,b,oops\n" + "3,b\n" * 20)
    return {"source": "t.csv", "target": "y"}


def text_in_numbers(folder: Path, rows: int = 3000) -> dict[str, Any]:
    lines = [f"{i}.5,{'a' if i % 2 else 'b'}" for i in range(rows)]
    lines[rows - 500] = "twelve,a"
    lines[rows - 300] = "n/a!,b"
    (folder / "t.csv").write_text("x,y\n" + "\n".join(lines) + "\n")
    return {"source": "t.csv", "target": "y"}


def image_folders(folder: Path, *, broken: bool) -> dict[str, Any]:
    for label in ("cat", "dog"):
        (folder / "imgs" / label).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / "imgs" / label / f"{i}.png")
    if broken:
        (folder / "imgs" / "dog" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {"source": "imgs", "format": "images", "split": {"validation": 0.2, "test": 0.2}}


def no_classes(folder: Path) -> dict[str, Any]:
    (folder / "imgs" / "train").mkdir(parents=True)
    (folder / "imgs" / "train" / "readme.png").write_bytes(b"")
    return {"source": "imgs", "format": "images"}


def corrupt_gzip(folder: Path) -> dict[str, Any]:
    raw = folder / "raw"
    raw.mkdir()
    x, y = synthetic_images(40)
    write_idx(raw / "train-images-idx3-ubyte.gz", x)
    write_idx(raw / "train-labels-idx1-ubyte.gz", y)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"x")[:12])
    return {"source": "raw"}


def single_example_class(folder: Path) -> dict[str, Any]:
    labels = ["a", "b"] * 20 + ["c"]
    rows = [f"{i * 0.37:.2f},{label}" for i, label in enumerate(labels)]
    (folder / "t.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    return {"source": "t.csv", "target": "y"}


def short_series(folder: Path) -> dict[str, Any]:
    days = [f"2020-01-{d:02d},{d * 1.5}" for d in range(1, 31)]
    (folder / "s.csv").write_text("day,temp\n" + "\n".join(days))
    return {"source": "s.csv", "target": "temp", "series": {"lookback": 40}}


def unknown_format(folder: Path) -> dict[str, Any]:
    (folder / "data.xlsx").write_bytes(b"PK\x03\x04\x00\x00binary")
    return {"source": "data.xlsx", "target": "y"}


CASES = {
    "empty file": (csv_source(""), ["t.csv", "holds no rows"]),
    "header only": (csv_source("x,y\n"), ["t.csv", "no data rows"]),
    "missing target": (
        csv_source("x,z\n1,a\n2,b\n"),
        ["`data.target`", "'y'", "columns are: x, z"],
    ),
    "target all missing": (
        csv_source("x,y\n" + "1,?\n2,NA\n3,\n" * 5),
        ["'y'", "missing in every row"],
    ),
    "numeric column with text": (
        text_in_numbers,
        ["Column 'x'", "row 2501 (line 2502): 'twelve'", "row 2701", "categorical"],
    ),
    "text in numbers past the first megabyte": (
        lambda f: text_in_numbers(f, rows=120_000),  # pyarrow guessed numbers from block one
        ["Column 'x'", "row 119501 (line 119502): 'twelve'", "2 value(s) are text"],
    ),
    "ragged rows": (ragged, ["t.csv", "line 22", "3 fields where the header has 2"]),
    "undecodable image": (
        lambda f: image_folders(f, broken=True),
        ["Cannot decode the image", "3.jpg"],
    ),
    "corrupt gzip": (corrupt_gzip, ["train-labels-idx1-ubyte.gz", "not a readable gzip"]),
    "unknown format": (unknown_format, ["Cannot tell the format", "data.xlsx", "`data.format`"]),
    "no classes": (no_classes, ["has no class folders", "train"]),
    "single example class": (single_example_class, ["class(es) c have a single example"]),
    "lookback longer than the series": (
        short_series,
        ["lookback 40", "time steps", "`data.series.lookback`"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_paragraph(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, needles = CASES[case]
    write_recipe(tmp_path, make(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["prepare"])
    err = result.stderr
    assert result.exit_code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert err.count("error:") == 1
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err}"
    assert not (tmp_path / "data").exists()  # nothing a later command could pick up


def test_a_failed_rebuild_keeps_the_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_recipe(tmp_path, image_folders(tmp_path, broken=False))
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["prepare"]).exit_code == 0
    before = sorted(p.name for p in (tmp_path / "data" / "bad").iterdir())
    (tmp_path / "imgs" / "cat" / "9.png").write_bytes(b"\x89PNG truncated")
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 2 and "9.png" in result.stderr
    assert sorted(p.name for p in (tmp_path / "data" / "bad").iterdir()) == before
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["bad"]  # no half-written folder
