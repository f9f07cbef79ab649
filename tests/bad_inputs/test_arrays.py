"""Bad array sources for `dltrain prepare`: .npz archives, IDX folders, image and text folders,
and formats that do not fit the source.

Each case writes its source beside the fixture's table and prepared data/bad/, which a failed
prepare must leave as they were.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.bad_inputs.corpus import Case, check, params, prepare, recipe, write
from tests.conftest import synthetic_images, write_idx

X, Y = synthetic_images(40)  # 12×12 uint8 images of three classes
CNN = {"family": "cnn", "filters": [4], "dense": [8]}


def source(source_name: str, *steps: Any, model: dict[str, Any] | None = None, **data: Any):
    return (*steps, recipe({"source": source_name, **data}, model or CNN))


def npz(**arrays: Any) -> tuple:
    return source("a.npz", write("a.npz", lambda p: np.savez(p, **arrays)))


def npz_bytes(blob: bytes) -> tuple:
    return source("a.npz", write("a.npz", blob))


def idx_file(array: np.ndarray) -> Any:
    return lambda path: write_idx(path, array)


def raw_idx(header: bytes, body: bytes = b"") -> Any:
    return lambda path: path.write_bytes(gzip.compress(header + body))


def idx(images: Any = None, labels: Any = None, **more: Any) -> tuple:
    """An IDX folder raw/ with a train pair (``None``: the good one) and ``more`` files."""
    files = {
        "train-images-idx3-ubyte.gz": idx_file(X) if images is None else images,
        "train-labels-idx1-ubyte.gz": idx_file(Y) if labels is None else labels,
        **more,
    }
    steps = [write(f"raw/{name}", content) for name, content in files.items() if content]
    return source("raw", *steps)


def png(color: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (color, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header announces ``width``×``height`` pixels (a decompression bomb's
    calling card), with a valid checksum so only the size gives it away."""
    blob = bytearray(png())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    blob[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(blob[ihdr - 4 : ihdr + 13]))
    blob[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(blob)


def images(
    classes: tuple[str, ...] = ("cat", "dog"), *extra: Any, root: str = "imgs", **data: Any
) -> tuple:
    steps = [write(f"{root}/{c}/{i}.png", png(i * 40)) for c in classes for i in range(5)]
    return source("imgs", *steps, *extra, **data)


def texts(
    classes: tuple[str, ...] = ("pos", "neg"), *extra: Any, text: str = "{c} words {i}", **data: Any
) -> tuple:
    steps = [write(f"txt/{c}/{i}.txt", text.format(c=c, i=i)) for c in classes for i in range(10)]
    return source("txt", *steps, *extra, model={"family": "text"}, **data)


FLOATS = X.astype(np.float64)

NPZ = [
    prepare(
        "npz with other array names",
        ["a.npz", "features, target"],
        "Rename the arrays",
        npz(features=X, target=Y),
    ),
    prepare(
        "npz with no arrays",
        ["a.npz", "holds the arrays none"],
        "Expected x_train and y_train",
        npz(),
    ),
    prepare(
        "npz NaN pixels",
        ["a.npz (train split)", "NaN, infinite"],
        "fill, rescale or drop those examples",
        npz(x=np.where(X > 200, np.nan, FLOATS), y=Y),
    ),
    prepare(
        "npz infinite pixels",
        ["a.npz (train split)", "in 40 example(s)"],
        "fill, rescale or drop",
        npz(x=np.where(X > 200, np.inf, FLOATS), y=Y),
    ),
    prepare(
        "npz 1e300 features",
        ["a.npz", "beyond ±3.4e38"],
        "rescale",
        npz(x=np.full((40, 4), 1e300), y=Y),
    ),
    prepare(
        "npz complex examples",
        ["a.npz", "complex128"],
        "Convert the array",
        npz(x=X.astype(complex), y=Y),
    ),
    prepare(
        "npz text examples",
        ["a.npz", "<U1"],
        "expected integers or floats",
        npz(x=np.array([["a"] * 3] * 40), y=Y),
    ),
    prepare(
        "npz boolean examples",
        ["a.npz", "holds bool examples"],
        "Convert the array",
        npz(x=X > 100, y=Y),
    ),
    prepare(
        "npz of pickled objects",
        ["a.npz", "Object arrays cannot be loaded"],
        "save it without pickled objects",
        npz(x=np.array([[1, "a"]] * 40, dtype=object), y=Y),
    ),
    prepare(
        "npz scalar examples",
        ["a.npz (train split)", "a single number (float64)"],
        "save the examples as a 2-D",
        npz(x=np.float64(3), y=Y),
    ),
    prepare(
        "npz 1-D examples",
        ["a.npz", "shape (40,)"],
        "2-D (or larger) array",
        npz(x=np.arange(40.0), y=Y),
    ),
    prepare(
        "npz zero examples",
        ["a.npz", "shape (0, 12, 12)"],
        "check that the export finished",
        npz(x=X[:0], y=Y[:0]),
    ),
    prepare(
        "npz 40 examples, 30 labels",
        ["a.npz", "40 examples but labels of shape (30,)"],
        "one integer label per example",
        npz(x=X, y=Y[:30]),
    ),
    prepare(
        "npz labels as a column",
        ["a.npz", "labels of shape (40, 1)"],
        "one integer label per example",
        npz(x=X, y=Y[:, None]),
    ),
    prepare(
        "npz fractional labels",
        ["a.npz", "float64"],
        "Convert them before saving",
        npz(x=X, y=Y + 0.5),
    ),
    prepare(
        "npz whole-number float labels",
        ["a.npz", "labels of the train split are float64"],
        "expected integers (class indices)",
        npz(x=X, y=Y.astype(float)),
    ),
    prepare(
        "npz text labels",
        ["a.npz", "<U1"],
        "expected integers (class indices)",
        npz(x=X, y=np.array(["a", "b"] * 20)),
    ),
    prepare(
        "npz label 10**12",
        ["a.npz", "go up to 1,000,000,000,000"],
        "renumber the labels consecutively",
        npz(x=X, y=np.where(Y == 1, 10**12, Y.astype(np.int64))),
    ),
    prepare(
        "npz negative labels",
        ["a.npz", "go down to -1"],
        "relabel the data",
        npz(x=X, y=Y.astype(np.int64) - 1),
    ),
    prepare(
        "npz one class",
        ["a.npz", "one class only (0)"],
        "add examples of the others",
        npz(x=X, y=np.zeros(40, np.int64)),
    ),
    prepare(
        "npz cut short",
        ["a.npz", "not a readable .npz archive"],
        "copy it again",
        source("a.npz", write("a.npz", lambda p: p.write_bytes(npz_blob()[:500]))),
    ),
    prepare("npz of zero bytes", ["a.npz", "it is empty"], "copy it again", npz_bytes(b"")),
    prepare(
        "npz that is a CSV",
        ["a.npz", "does not start like a zip file"],
        "Expected a file written by numpy.savez",
        npz_bytes(b"x,y\n1,2\n"),
    ),
    prepare(
        "npz test split of another shape",
        ["a.npz", "test examples have shape (6, 6)"],
        "resize or re-export the test examples",
        npz(x_train=X, y_train=Y, x_test=X[:5, :6, :6], y_test=Y[:5]),
    ),
    prepare(
        "npz test labels the training lacks",
        ["test split of", "label(s) 9"],
        "fix the labels",
        npz(x_train=X, y_train=Y, x_test=X[:5], y_test=np.full(5, 9)),
    ),
    prepare(
        "data.classes names too few",
        ["`data.classes` names 2 classes", "has 3"],
        "Name every class",
        (*npz(x=X, y=Y)[:1], recipe({"source": "a.npz", "classes": ["a", "b"]}, CNN)),
    ),
    prepare(
        "series section on arrays",
        ["`data.series`", "npz data"],
        "Remove the series section",
        (*npz(x=X, y=Y)[:1], recipe({"source": "a.npz", "series": {"lookback": 3}}, CNN)),
    ),
    prepare(
        "time split on arrays",
        ["`data.split.method: time`", "npz data"],
        "Use random or stratified",
        (
            *npz(x=X, y=Y)[:1],
            recipe({"source": "a.npz", "split": {"method": "time", "column": "t"}}, CNN),
        ),
    ),
]


def npz_blob() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=X, y=Y)
    return buffer.getvalue()


IDX_HEADER_IMAGES = struct.pack(">BBBB", 0, 0, 0x08, 3)

IDX = [
    prepare(
        "IDX images cut short",
        ["train-images-idx3-ubyte.gz", "holds 484 bytes"],
        "copy it again",
        idx(images=raw_idx(IDX_HEADER_IMAGES + struct.pack(">3I", 40, 12, 12), bytes(484))),
    ),
    prepare(
        "IDX that is an HTML page",
        ["train-images-idx3-ubyte.gz", "3c68746d"],
        "an HTML error page saved under its name",
        idx(images=raw_idx(b"<html>no</html>")),
    ),
    prepare(
        "IDX of zero images",
        ["train-images-idx3-ubyte.gz", "shape (0, 12, 12)"],
        "check that the export finished",
        idx(images=idx_file(X[:0]), labels=idx_file(Y[:0])),
    ),
    prepare(
        "IDX pair of 40 images and 30 labels",
        ["40 examples", "labels of shape (30,)"],
        "do not belong together",
        idx(labels=idx_file(Y[:30])),
    ),
    prepare(
        "IDX labels without images",
        ["no complete pair", "train-labels-idx1-ubyte.gz"],
        "Copy the missing file",
        idx(images=False),
    ),
    prepare(
        "IDX header claiming exabytes",
        ["train-images-idx3-ubyte.gz", "(2147483648, 1048576"],
        "copy it again",
        idx(images=raw_idx(IDX_HEADER_IMAGES + struct.pack(">3I", 2**31, 2**20, 2**20))),
    ),
    prepare(
        "IDX images of no dimensions",
        ["train-images-idx3-ubyte.gz", "0 examples"],
        "do not belong together",
        idx(images=raw_idx(struct.pack(">BBBB", 0, 0, 0x08, 0), b"\x05")),
    ),
    prepare(
        "IDX float labels",
        ["train-labels-idx1-ubyte.gz", "float32 values"],
        "check that train-labels-idx1-ubyte.gz is the labels file",
        idx(
            labels=raw_idx(
                struct.pack(">BBBBI", 0, 0, 0x0D, 1, 40), np.full(40, np.nan, ">f4").tobytes()
            )
        ),
    ),
    prepare(
        "IDX NaN images",
        ["train-images-idx3-ubyte.gz", "NaN, infinite"],
        "fill, rescale or drop",
        idx(
            images=raw_idx(
                struct.pack(">BBBB3I", 0, 0, 0x0D, 3, 40, 4, 4),
                np.full(640, np.nan, ">f4").tobytes(),
            )
        ),
    ),
    prepare(
        "IDX with two image files for train",
        ["2 IDX images files", "train split"],
        "move the others out",
        idx(**{"train-images-2-idx3-ubyte.gz": idx_file(X)}),
    ),
    prepare(
        "IDX named .gz but not gzipped",
        ["train-images-idx3-ubyte.gz", "not a readable gzip"],
        "gzip -t",
        idx(images=lambda p: p.write_bytes(b"\x00\x00\x08\x03garbage")),
    ),
    prepare(
        "IDX test images of another shape",
        ["test examples have shape (6, 6)"],
        "resize or re-export the test examples",
        idx(
            **{
                "t10k-images-idx3-ubyte.gz": idx_file(X[:10, :6, :6]),
                "t10k-labels-idx1-ubyte.gz": idx_file(Y[:10]),
            }
        ),
    ),
]

IMAGES = [
    prepare(
        "zero-byte image",
        ["imgs/cat/z.png", "not a readable image"],
        "Replace it or delete it",
        images(("cat", "dog"), write("imgs/cat/z.png", b"")),
    ),
    prepare(
        "text with a .png suffix",
        ["imgs/dog/notes.png"],
        "Replace it or delete it",
        images(("cat", "dog"), write("imgs/dog/notes.png", "not a picture")),
    ),
    prepare(
        "one class of images",
        ["imgs", "one class only (cat)"],
        "one subfolder per class",
        images(("cat",)),
    ),
    prepare(
        "PNG cut short",
        ["imgs/cat/z.png"],
        "the copy is truncated",
        images(("cat", "dog"), write("imgs/cat/z.png", png()[:40])),
    ),
    prepare(
        "PNG claiming 30000×30000 pixels",
        ["imgs/cat/z.png", "decompression bomb"],
        "Replace it or delete it",
        images(("cat", "dog"), write("imgs/cat/z.png", png_claiming(30000, 30000))),
    ),
    prepare(
        "first image unreadable",
        ["imgs/cat/0.png"],
        "Replace it or delete it",
        images(("cat", "dog"), write("imgs/cat/0.png", b"junk")),
    ),
    prepare(
        "a class folder without images",
        ["bird", "hold no image files"],
        "Add examples or remove the folder",
        images(("cat", "dog"), write("imgs/bird/readme.md", "empty")),
    ),
    prepare(
        "test class the training lacks",
        ["imgs/test", "bird"],
        "add training examples",
        images(("train/cat", "train/dog"), write("imgs/test/bird/a.png", png())),
    ),
    prepare(
        "image size 100000",
        ["`data.image.size`", "[100000, 100000]"],
        "downscale or tile",
        images(("cat", "dog"), image={"size": [100000, 100000]}),
    ),
    prepare(
        "loose images, no class folders",
        ["imgs", "Cannot tell the format"],
        "`data.format`",
        source("imgs", write("imgs/a.png", png()), write("imgs/b.png", png(9))),
    ),
]

TEXTS = [
    prepare(
        "latin-1 text file",
        ["txt/pos/x.txt", "not UTF-8 text"],
        "re-save the file as UTF-8",
        texts(("pos", "neg"), write("txt/pos/x.txt", "caf\xe9".encode("latin-1"))),
    ),
    prepare(
        "binary .txt file",
        ["txt/neg/x.txt", "not UTF-8"],
        "iconv -t utf-8",
        texts(("pos", "neg"), write("txt/neg/x.txt", bytes(range(256)))),
    ),
    prepare(
        "UTF-16 text file",
        ["txt/pos/x.txt", "byte 0"],
        "re-save the file as UTF-8",
        texts(("pos", "neg"), write("txt/pos/x.txt", "hello".encode("utf-16"))),
    ),
    prepare(
        "every text empty",
        ["training texts hold no words"],
        "the text column holds the text",
        texts(text=""),
    ),
    prepare(
        "one class of texts",
        ["txt", "one class only (pos)"],
        "add examples of the others",
        texts(("pos",)),
    ),
]

FORMATS = [
    prepare(
        "images format on an .npz file",
        ["`data.format: images`", "a.npz is a file"],
        "Point `data.source` at that folder",
        npz(x=X, y=Y)[:1] + (recipe({"source": "a.npz", "format": "images"}, CNN),),
    ),
    prepare(
        "idx format on a CSV",
        ["`data.format: idx`", "good.csv is a file"],
        "set `data.format: auto`",
        (recipe({"source": "good.csv", "format": "idx"}, CNN),),
    ),
    prepare(
        "text format on a file",
        ["`data.format: text`", "good.csv is a file"],
        "Point `data.source` at that folder",
        (recipe({"source": "good.csv", "format": "text"}, CNN),),
    ),
    prepare(
        "npz format on a folder",
        ["`data.format: npz`", "is a folder"],
        "Point `data.source` at the file",
        images(format="npz"),
    ),
    prepare(
        "text format on image folders",
        ["cat, dog", "hold no text files"],
        "Add examples",
        images(format="text"),
    ),
    prepare(
        "images format on text folders",
        ["neg, pos", "hold no image files"],
        "Add examples",
        texts(format="images"),
    ),
    prepare(
        "csv format on an .npz",
        ["a.npz", "NUL bytes"],
        "set `data.format`",
        npz(x=X, y=Y)[:1] + (recipe({"source": "a.npz", "format": "csv", "target": "y"}),),
    ),
    prepare(
        "source missing",
        ["nothing_here.npz", "does not exist"],
        "Fix `data.source`",
        source("nothing_here.npz"),
    ),
    prepare(
        "source an empty folder",
        ["empty", "holds: nothing"],
        "Set `data.format`",
        source("empty", lambda project: (project / "empty").mkdir()),
    ),
]


@pytest.mark.parametrize("item", params(NPZ + IDX + IMAGES + TEXTS + FORMATS))
def test_bad_array_source(item: Case, source_project: Path) -> None:
    check(item, source_project)
