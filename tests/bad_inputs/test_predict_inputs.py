"""Bad inputs and outputs for `dltrain predict` with the trained fixture project's runs.

Every case first writes an earlier output, old.csv, and predicts into it where the case allows:
a failed predict must leave it, the runs and their data as they were, and write nothing else.
(tests/cli/test_predict.py holds a first set of predict cases; these are others.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.bad_inputs.corpus import (
    RUN_ID,
    Case,
    case,
    check,
    copy_run,
    in_run,
    model_of,
    model_without_config,
    other_version,
    params,
    run_folder,
    write,
)

EARLIER = write("old.csv", "row,prediction\n0,earlier\n")
PIXELS = np.zeros((3, 12, 12), np.uint8)
HOUSE = "house_id,rooms,area,district\n"


def predict(id: str, args: str, names: Any, fix: Any, *setup: Any, **options: Any) -> Case:
    """A predict case; ``-o old.csv`` is added unless the case names its own output."""
    words = ["predict", *args.split()]
    if "-o" not in words:
        words += ["-o", "old.csv"]
    return case(id, words, names, fix, EARLIER, *setup, **options)


def npz(**arrays: Any) -> Any:
    return write("in.npz", lambda p: np.savez(p, **arrays))


def houses(*rows: str) -> Any:
    return write("new.csv", HOUSE + "".join(f"{row}\n" for row in rows))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(PIXELS[0]).save(buffer, format="PNG")
    return buffer.getvalue()


INPUTS = [
    predict(
        "npz examples of another size",
        "-i in.npz",
        ["in.npz", "shape (5, 5, 1)"],
        "give data laid out like the training source",
        npz(x=np.zeros((3, 5, 5), np.uint8)),
    ),
    predict(
        "npz NaN pixels",
        "-i in.npz",
        ["in.npz", "NaN, infinite"],
        "fill, rescale or drop",
        npz(x=np.full((3, 12, 12), np.nan)),
    ),
    predict(
        "npz infinite pixels",
        "-i in.npz",
        ["in.npz", "in 3 example(s)"],
        "fill, rescale or drop",
        npz(x=np.full((3, 12, 12), -np.inf)),
    ),
    predict(
        "npz 1e300 pixels",
        "-i in.npz",
        ["in.npz", "beyond ±3.4e38"],
        "rescale",
        npz(x=np.full((3, 12, 12), 1e300)),
    ),
    predict(
        "npz zero examples",
        "-i in.npz",
        ["in.npz", "shape (0, 12, 12, 1)"],
        "check that the export finished",
        npz(x=np.zeros((0, 12, 12), np.uint8)),
    ),
    predict(
        "npz complex pixels",
        "-i in.npz",
        ["in.npz", "complex128"],
        "Convert the array",
        npz(x=np.zeros((3, 12, 12), complex)),
    ),
    predict(
        "npz one image without its batch axis",
        "-i in.npz",
        ["in.npz", "shape (12,)"],
        "laid out like the training source",
        npz(x=PIXELS[0]),
    ),
    predict(
        "npz with two candidate arrays",
        "-i in.npz",
        ["in.npz", "a, b"],
        "Expected an array named x",
        npz(a=PIXELS, b=PIXELS),
    ),
    predict(
        "npz scaled to [0, 1]",
        "-i in.npz",
        ["in.npz", "[0.5, 0.5]"],
        "Give the raw values",
        npz(x=np.full((3, 12, 12), 0.5)),
    ),
    predict(
        "npz that is text",
        "-i in.npz",
        ["in.npz", "does not start like a zip file"],
        "save it again with the examples in an array named x",
        write("in.npz", "x\n1\n"),
    ),
    predict(
        "npz for a table model",
        "-r house.yaml -i in.npz",
        ["in.npz", "columns house_id, rooms, area, district"],
        "Give a CSV/TSV or Parquet",
        npz(x=PIXELS),
    ),
    predict(
        "a spreadsheet",
        "-i in.xlsx",
        ["in.xlsx", "Cannot tell what"],
        "--input-format",
        write("in.xlsx", b"PK\x03\x04 a spreadsheet"),
    ),
    predict(
        "--input-format excel",
        "-i binary.npz --input-format excel",
        "'excel'",
        "npz, idx, images, table, lines",
    ),
    predict(
        "--input-format table for an image model",
        "-i binary.npz --input-format table",
        ["binary.npz is a table", "image inputs of shape (12, 12, 1)"],
        "Give the inputs in the form the model was trained on",
    ),
    predict(
        "--input-format images on an .npz",
        "-i binary.npz --input-format images",
        ["binary.npz", "not a readable image"],
        "Replace it or delete it",
    ),
    predict(
        "input missing",
        "-i nothing.npz",
        ["nothing.npz", "does not exist"],
        "npz: .npz archive with an array x",
    ),
    predict(
        "an empty folder",
        "-i empty",
        ["empty", "holds (nothing)"],
        "--input-format",
        lambda project: (project / "empty").mkdir(),
    ),
    predict(
        "a folder without images",
        "-i notes",
        ["notes", "a.txt"],
        "--input-format",
        write("notes/a.txt", "words"),
    ),
    predict(
        "a table for an image model",
        "-i houses.csv",
        ["houses.csv", "Cannot tell what"],
        "--input-format",
    ),
    predict(
        "a text file for an image model",
        "-i lines.txt",
        ["lines.txt", "Cannot tell what"],
        "--input-format",
        write("lines.txt", "hello\nworld\n"),
    ),
    predict(
        "a zero-byte image among good ones",
        "-i pics",
        ["pics/b.png", "not a readable image"],
        "Replace it or delete it",
        write("pics/a.png", png()),
        write("pics/b.png", b""),
    ),
    predict(
        "images for a table model",
        "-r house.yaml -i pics",
        ["pics", "holds image files", "table inputs"],
        "the form the model was trained on",
        write("pics/a.png", png()),
    ),
    predict(
        "IDX images cut short",
        "-i cut-images-idx3-ubyte.gz",
        ["cut-images-idx3-ubyte.gz", "not a readable gzip file"],
        "Copy it again",
        write(
            "cut-images-idx3-ubyte.gz",
            lambda p: p.write_bytes(
                (p.parent / "raw/t10k-images-idx3-ubyte.gz").read_bytes()[:300]
            ),
        ),
    ),
    predict(
        "IDX folder with two image files",
        "-i raw",
        ["raw holds 2 IDX images files"],
        "pass the file itself with --input",
    ),
    predict(
        "table lacking columns",
        "-r house.yaml -i new.csv",
        ["new.csv", "area, district"],
        "give a table with the training source's columns",
        write("new.csv", "house_id,rooms\nh1,3\n"),
    ),
    predict(
        "table with inf",
        "-r house.yaml -i new.csv",
        ["Column 'area'", "row 1 (line 2): inf"],
        "finite numbers",
        houses("h1,3,inf,north", "h2,2,50,south"),
    ),
    predict(
        "table with 1e300",
        "-r house.yaml -i new.csv",
        ["Column 'area'", "1e+300"],
        "finite numbers",
        houses("h1,3,50,north", "h2,2,1e300,south"),
    ),
    predict(
        "table with words among numbers",
        "-r house.yaml -i new.csv",
        ["Column 'area'", "new.csv", "'big'"],
        "leave the cell empty",
        houses("h1,3,big,north"),
    ),
    predict(
        "table with a header only",
        "-r house.yaml -i new.csv",
        ["new.csv", "no data rows"],
        "at least one row of data",
        houses(),
    ),
    predict(
        "table empty",
        "-r house.yaml -i new.csv",
        ["new.csv", "holds no rows"],
        "check that the export",
        write("new.csv", ""),
    ),
    predict(
        "table with a ragged row",
        "-r house.yaml -i new.csv",
        ["new.csv", "line 2", "5 fields where the header has 4"],
        "fix or remove the row",
        houses("h1,3,50,north,extra", "h2,2,50,south"),
    ),
    predict(
        "binary file named .csv",
        "-r house.yaml -i new.csv",
        ["new.csv", "NUL bytes"],
        "set `data.format`",
        write("new.csv", b"\x00\x01binary" * 50),
    ),
    predict(
        "Parquet with a list column",
        "-r house.yaml -i new.parquet",
        ["new.parquet", "rooms (list<element: int64>)"],
        "write one column per value",
        write(
            "new.parquet",
            lambda p: pq.write_table(
                pa.table(
                    {"house_id": ["h1"], "rooms": [[3]], "area": [50.0], "district": ["north"]}
                ),
                p,
            ),
        ),
    ),
]

OUTPUTS = [
    predict(
        "output suffix .parquet",
        "-i binary.npz -o out.parquet",
        ["out.parquet", "'.parquet'"],
        "CSV (.csv) or JSON lines",
    ),
    predict(
        "output is the input",
        "-r house.yaml -i houses.csv -o houses.csv",
        "houses.csv is the input file",
        "choose another name",
    ),
    predict(
        "output is a folder",
        "-i binary.npz -o out.csv",
        ["out.csv is a folder"],
        "Name a file",
        lambda project: (project / "out.csv").mkdir(),
    ),
    case(
        "output is a run's history.csv",
        ["predict", "-i", "binary.npz", "-o", f"runs/tiny/{RUN_ID}/history.csv"],
        ["history.csv is a file of run folder"],
        "Write the predictions elsewhere",
        copy_run(),
    ),
    predict(
        "output is a run's model.keras",
        "-i binary.npz -o model.keras",
        ["model.keras", "'.keras'"],
        "Name the file accordingly",
    ),
]


RUN_FOLDERS = [
    predict(
        "--run missing",
        "-i binary.npz --run runs/tiny/nope",
        ["runs/tiny/nope"],
        "list them with `ls",
    ),
    predict(
        "--run not a run",
        "-i binary.npz --run notrun",
        ["notrun holds no model.keras"],
        "pick another run",
        lambda project: (project / "notrun").mkdir(),
    ),
    predict(
        "--run a file",
        "-i binary.npz --run old.csv",
        ["old.csv does not exist"],
        "Expected a folder written by `dltrain train`",
    ),
    predict(
        "no run of the recipe",
        "-i binary.npz",
        ["No finished run of recipe 'tiny'"],
        "run `dltrain train` first",
        lambda project: [
            p.rename(p.with_name("held")) for p in project.glob("runs/tiny/*/model.keras")
        ],
    ),
    predict(
        "model.keras of bytes",
        "-i binary.npz",
        ["model.keras is not a .keras archive"],
        "train the run again",
        in_run("model.keras", b"garbage"),
    ),
    predict(
        "model.keras a zip without a model",
        "-i binary.npz",
        ["model.keras", "no item named 'config.json'"],
        "train the run again",
        model_without_config,
    ),
    predict(
        "run.json not JSON",
        "-i binary.npz",
        ["run.json", "unreadable"],
        "train the run again",
        in_run("run.json", "{not json"),
    ),
    predict(
        "run.json a list",
        "-i binary.npz",
        ["run.json", "not a run record"],
        "fix the file by hand",
        in_run("run.json", "[1, 2]"),
    ),
    predict(
        "run.json absent",
        "-i binary.npz",
        ["run.json is missing"],
        "train the run again",
        lambda project: (run_folder(project) / "run.json").unlink(),
    ),
    predict(
        "manifests of another version",
        "-i binary.npz",
        ["data/tiny/manifest.json", "version: Extra inputs are not permitted"],
        "`dltrain prepare --force`",
        other_version("data/tiny/manifest.json", "runs/tiny/*/manifest.json"),
    ),
    predict(
        "threshold.json not JSON",
        "-r bin.yaml -i binary.npz",
        ["threshold.json is unreadable"],
        "--optimize-threshold",
        in_run("threshold.json", "{bad", "bin"),
    ),
    predict(
        "threshold.json a word",
        "-r bin.yaml -i binary.npz",
        ["threshold.json", "unable to parse string as a number"],
        "choose the threshold again",
        in_run(
            "threshold.json", json.dumps({"kind": "binary_decision", "threshold": "high"}), "bin"
        ),
    ),
    predict(
        "model.keras of another run",
        "-i binary.npz",
        ["model.keras", "house"],
        "train the run again",
        model_of("house"),
    ),
]


@pytest.mark.parametrize("item", params(INPUTS + OUTPUTS + RUN_FOLDERS))
def test_bad_predict_input(item: Case, trained_project: Path) -> None:
    check(item, trained_project)
