"""prepare and predict read a raw value the same way: one source format per case.

Each case prepares a tiny source whose test split is a file (or folder) of its own, then reads
that same file with the reader predict uses, and feeds both through the model's own input
layers (scaling, imputation, vocabularies). The tensors must be identical.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dltrain.backend import keras
from dltrain.data.prepare import prepare
from dltrain.data.readers.inputs import open_input
from dltrain.data.readers.model_input import ModelInput
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec
from tests.conftest import synthetic_images, write_idx

Case = tuple[dict[str, Any], Path]  # (the recipe's data section, the raw test input)


def table_rows(num: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": np.where(rng.random(num) < 0.1, np.nan, rng.normal(50, 10, num).round(1)),
            # a category written as numbers: the test file spells some of them "2.0"
            "grade": rng.choice([1, 2, 3], num),
            "city": rng.choice(["paris", " lyon", "nice", ""], num),
            "label": rng.choice(["no", "yes"], num),
        }
    )


def csv_case(tmp_path: Path) -> Case:
    table_rows(160, 0).to_csv(tmp_path / "train.csv", index=False)
    test = table_rows(40, 1).astype({"grade": str})
    test.loc[::3, "grade"] = test.loc[::3, "grade"] + ".0"
    test.to_csv(tmp_path / "test.csv", index=False)
    spec = {"target": "label", "columns": {"grade": {"type": "categorical"}}}
    return {"source": tmp_path / "train.csv", "test_source": "test.csv", **spec}, tmp_path / (
        "test.csv"
    )


def parquet_case(tmp_path: Path) -> Case:
    table_rows(160, 0).to_parquet(tmp_path / "train.parquet")
    table_rows(40, 1).astype({"grade": float}).to_parquet(tmp_path / "test.parquet")
    spec = {"target": "label", "columns": {"grade": {"type": "categorical"}}}
    return {"source": tmp_path / "train.parquet", "test_source": "test.parquet", **spec}, (
        tmp_path / "test.parquet"
    )


def image_folder_case(tmp_path: Path) -> Case:
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for label in ("cat", "dog"):
            folder = tmp_path / "imgs" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)  # resized to 16x16
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return {"source": tmp_path / "imgs", "image": {"size": [16, 16]}}, tmp_path / "imgs" / "test"


def text_folder_case(tmp_path: Path) -> Case:
    words = {"pos": "good great fine lovely", "neg": "bad awful poor dreadful"}
    lines = []
    for split, count in (("train", 10), ("test", 3)):
        for label, text in words.items():
            (tmp_path / "texts" / split / label).mkdir(parents=True)
            for i in range(count):
                message = f"{text.split()[i % 4].upper()}, Number {i} really!"
                (tmp_path / "texts" / split / label / f"{i}.txt").write_text(message)
                if split == "test":
                    lines.append(message)
    # predict's one-text-per-line file, in the order prepare read the test folder
    order = sorted(words)
    lines = [line for label in order for line in lines if _label_of(line, words) == label]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    return {"source": tmp_path / "texts"}, tmp_path / "lines.txt"


def _label_of(line: str, words: dict[str, str]) -> str:
    first = line.split(",")[0].lower()
    return next(label for label, text in words.items() if first in text.split())


def idx_case(tmp_path: Path) -> Case:
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix, num, seed in (("train", 60, 1), ("t10k", 20, 2)):
        images, labels = synthetic_images(num, seed=seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return {"source": folder}, folder / "t10k-images-idx3-ubyte.gz"


def npz_case(tmp_path: Path) -> Case:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    np.savez(tmp_path / "new.npz", x=x[60:])
    return {"source": tmp_path / "d.npz"}, tmp_path / "new.npz"


CASES: dict[str, Callable[[Path], Case]] = {
    "csv": csv_case,
    "parquet": parquet_case,
    "image folder": image_folder_case,
    "text folder": text_folder_case,
    "idx": idx_case,
    "npz": npz_case,
}


def encoded(io: ModelIO, x: Any) -> np.ndarray:
    raw, tensor = io.inputs()
    return np.asarray(keras.Model(raw, tensor)(x))


@pytest.mark.parametrize("name", list(CASES))
def test_prepare_and_predict_give_the_model_the_same_tensors(name: str, tmp_path: Path) -> None:
    data, raw_input = CASES[name](tmp_path)
    spec = DataSpec.model_validate(data)
    dataset = prepare(spec, 1, tmp_path / "prepared").dataset
    stored, _ = dataset.load_split("test")
    reader = open_input(raw_input, ModelInput.from_manifest(dataset.manifest, spec.csv))
    (chunk,) = list(reader.chunks(10_000))
    assert len(chunk) == dataset.num_examples("test")
    io = ModelIO(dataset.manifest)
    np.testing.assert_array_equal(encoded(io, chunk.features), encoded(io, stored))


def test_a_category_spelled_2_or_2_0_is_the_one_prepare_learned(tmp_path: Path) -> None:
    data, raw_input = csv_case(tmp_path)
    spec = DataSpec.model_validate(data)
    dataset = prepare(spec, 1, tmp_path / "prepared").dataset
    reader = open_input(raw_input, ModelInput.from_manifest(dataset.manifest, spec.csv))
    (chunk,) = list(reader.chunks(10_000))
    assert isinstance(chunk.features, dict)
    assert set(chunk.features["grade"]) == {"1", "2", "3"}  # "2.0" in the file
    report = {c.column: c for c in reader.report.columns}
    assert report["grade"].unseen == 0 and report["city"].unseen == 0
    assert report["city"].missing == int((pd.read_csv(raw_input)["city"].isna()).sum()) > 0
