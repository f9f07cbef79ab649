"""Preparing tables: kinds and task inferred, cleaning, splits, statistics fitted on train only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dltrain.data.prepare import prepare
from dltrain.data.store import open_store
from dltrain.errors import DataError, DataQualityError, ExitCode
from dltrain.recipe.data import DataSpec


def spec(source: Path, **kwargs: Any) -> DataSpec:
    return DataSpec.model_validate({"source": source, **kwargs})


def people(num: int = 200, seed: int = 0) -> pd.DataFrame:
    """A small table with every column kind and a learnable binary target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, num).astype(float)
    city = rng.choice(["paris", "lyon", "nice"], num)
    frame = pd.DataFrame(
        {
            "id": np.arange(1, num + 1),
            "age": age,
            "income": np.round(rng.lognormal(10, 1, num), 2),
            "city": city,
            "joined": pd.date_range("2020-01-01", periods=num, freq="D").strftime("%Y-%m-%d"),
            "label": np.where(age > 45, "yes", "no"),
        }
    )
    return frame


def write(frame: pd.DataFrame, path: Path, **options: Any) -> Path:
    frame.to_csv(path, index=False, **options)
    return path


def test_kinds_task_and_what_is_stored(tmp_path: Path) -> None:
    source = write(people(), tmp_path / "people.csv")
    dataset = prepare(spec(source, target="label"), 1, tmp_path / "out").dataset
    manifest = dataset.manifest.to_json()
    kinds = {c["name"]: (c["type"], c["used"]) for c in manifest["features"]["columns"]}
    assert kinds == {
        "id": ("identifier", False),
        "age": ("numeric", True),
        "income": ("numeric", True),
        "city": ("categorical", True),
        "joined": ("datetime", False),
    }
    assert manifest["task"] == "binary"
    assert manifest["target"]["classes"] == ["no", "yes"]
    x, y = dataset.load_split("train")
    assert set(x) == {"id", "age", "income", "city", "joined"}  # every column but the target
    assert x["age"].dtype == np.float32 and x["city"].dtype == object
    assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    # 2 numbers + city's one-hot (out-of-vocabulary, 3 cities, missing)
    assert manifest["features"]["num_features"] == 2 + 5


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (lambda n, r: r.normal(0, 1, n), "regression"),
        (lambda n, r: r.integers(0, 5, n), "multiclass"),
        (lambda n, r: r.integers(0, 2, n), "binary"),
    ],
)
def test_task_is_read_from_the_target(tmp_path: Path, values: Any, task: str) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 100), "y": values(100, rng)})
    manifest = prepare(spec(write(frame, tmp_path / "t.csv"), target="y"), 1, tmp_path / "o")
    assert manifest.dataset.manifest.to_json()["task"] == task


def test_statistics_come_from_the_training_split_only(tmp_path: Path) -> None:
    frame = people(300)
    frame.loc[::7, "income"] = np.nan
    source = write(frame, tmp_path / "p.csv")
    dataset = prepare(spec(source, target="label", numeric_scaling="standard"), 3, tmp_path / "o")
    x, _ = dataset.dataset.load_split("train")
    entry = next(
        e
        for e in dataset.dataset.manifest.to_json()["preprocessing"]["numeric"]
        if e["column"] == "income"
    )
    income = x["income"].astype(np.float64)
    assert entry["fill"] == pytest.approx(np.nanmedian(income))
    filled = np.where(np.isnan(income), entry["fill"], income)
    assert entry["mean"] == pytest.approx(filled.mean(), rel=1e-6)
    assert entry["variance"] == pytest.approx(filled.var(), rel=1e-6)
    assert entry["train_missing"] == int(np.isnan(income).sum()) > 0


def test_log_unit_and_clipping(tmp_path: Path) -> None:
    frame = people(300)
    source = write(frame, tmp_path / "p.csv")
    columns = {"income": {"scaling": "log", "outliers": "iqr"}, "age": {"scaling": "unit"}}
    dataset = prepare(spec(source, target="label", columns=columns), 3, tmp_path / "o").dataset
    numeric = {e["column"]: e for e in dataset.manifest.to_json()["preprocessing"]["numeric"]}
    x, _ = dataset.load_split("train")
    age = x["age"].astype(np.float64)
    assert numeric["age"]["mean"] == pytest.approx(age.min())  # (x - min) / (max - min)
    assert np.sqrt(numeric["age"]["variance"]) == pytest.approx(age.max() - age.min())
    income = numeric["income"]
    q1, q3 = np.percentile(x["income"].astype(np.float64), [25, 75])
    assert income["high"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    transformed = np.log1p(np.clip(x["income"], income["low"], income["high"]) - income["shift"])
    assert income["mean"] == pytest.approx(transformed.mean(), rel=1e-5)


def test_missing_categories_duplicates_and_drop_row(tmp_path: Path) -> None:
    frame = people(200)
    frame.loc[::10, "city"] = "?"
    frame.loc[::25, "age"] = np.nan
    frame = pd.concat([frame, frame.iloc[:5].assign(id=range(1000, 1005))])  # 5 repeated rows
    source = write(frame, tmp_path / "p.csv")
    result = prepare(
        spec(source, target="label", columns={"age": {"missing": "drop_row"}}), 1, tmp_path / "o"
    )
    manifest = result.dataset.manifest.to_json()
    cleaning = manifest["cleaning"]
    assert cleaning["dropped_rows"]["duplicate"] == 5  # the id differs, the record does not
    assert cleaning["dropped_rows"]["missing feature (drop_row)"] == 8
    assert sum(s["num_examples"] for s in manifest["splits"].values()) == 205 - 5 - 8
    city = next(c for c in manifest["preprocessing"]["categorical"] if c["column"] == "city")
    assert "?" in city["vocabulary"] and city["missing"] == "constant"
    assert city["mapping"][city["vocabulary"].index("?") + 1] == city["num_tokens"] - 1
    profile = json.loads((tmp_path / "o" / "profile.json").read_text())
    assert profile["duplicate_rows"] == 5
    flags = {c["name"]: c["flags"] for c in profile["columns"]}
    assert "identifier-like" in flags["id"]


def test_rows_at_different_times_are_not_duplicates(tmp_path: Path) -> None:
    days = pd.date_range("2021-01-01", periods=120, freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"day": days, "x": [1.0, 2.0] * 60, "y": [0.5, 1.5] * 60})
    source = write(pd.concat([frame, frame.iloc[:3]]), tmp_path / "daily.csv")  # 3 true repeats
    result = prepare(spec(source, target="y", task="regression"), 1, tmp_path / "o")
    assert result.profile["duplicate_rows"] == 3  # not 121: each day is its own reading
    assert result.dataset.manifest.to_json()["cleaning"]["dropped_rows"]["duplicate"] == 3


def test_stratified_split_and_class_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = np.array(["a"] * 160 + ["b"] * 40)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 200), "label": label})
    dataset = prepare(spec(write(frame, tmp_path / "t.csv"), target="label"), 1, tmp_path / "o")
    manifest = dataset.dataset.manifest.to_json()
    counts = {k: v["class_counts"] for k, v in manifest["splits"].items()}
    assert counts == {"train": [128, 32], "validation": [16, 4], "test": [16, 4]}
    assert manifest["target"]["class_weights"] == [
        pytest.approx(160 / 256),
        pytest.approx(160 / 64),
    ]


def test_oversampling_balances_the_training_split_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 200), "label": ["a"] * 160 + ["b"] * 40})
    source = write(frame, tmp_path / "t.csv")
    dataset = prepare(
        spec(source, target="label", sampling="oversample"), 1, tmp_path / "o"
    ).dataset
    _, y = dataset.load_split("train")
    assert np.bincount(y).tolist() == [128, 128]
    assert np.bincount(dataset.load_split("train", resample=False)[1]).tolist() == [128, 32]
    assert np.bincount(dataset.load_split("test")[1]).tolist() == [16, 4]
    # what an epoch runs, counted without reading the shards
    assert dataset.num_examples("train") == 256
    assert dataset.num_examples("train", resample=False) == 160
    under = prepare(spec(source, target="label", sampling="undersample"), 1, tmp_path / "u")
    assert under.dataset.num_examples("train") == len(under.dataset.load_split("train")[1]) == 64


def test_time_group_and_hash_splits(tmp_path: Path) -> None:
    frame = people(300).sample(frac=1.0, random_state=0)  # rows out of time order
    frame["store"] = np.arange(300) % 30
    source = write(frame, tmp_path / "p.csv")
    by_time = prepare(
        spec(source, target="label", split={"method": "time", "column": "joined"}),
        1,
        tmp_path / "t",
    ).dataset
    dates = {
        s: pd.to_datetime(by_time.load_split(s)[0]["joined"])
        for s in ("train", "validation", "test")
    }
    assert (
        dates["train"].max()
        < dates["validation"].min()
        <= dates["validation"].max()
        < dates["test"].min()
    )
    by_group = prepare(
        spec(source, target="label", split={"method": "group", "column": "store"}),
        1,
        tmp_path / "g",
    ).dataset
    groups = [set(by_group.load_split(s)[0]["store"]) for s in ("train", "validation", "test")]
    assert groups[0].isdisjoint(groups[1]) and groups[0].isdisjoint(groups[2])
    assert groups[1].isdisjoint(groups[2])
    hashed = [
        prepare(
            spec(source, target="label", split={"method": "hash", "column": "id"}),
            seed,
            tmp_path / f"h{seed}",
        ).dataset.load_split("test")[0]["id"]
        for seed in (1, 2)
    ]
    np.testing.assert_array_equal(hashed[0], hashed[1])  # a row keeps its split whatever the seed


def test_source_test_file_with_junk_line_and_dotted_labels(tmp_path: Path) -> None:
    rows = people(120)[["age", "income", "city", "label"]]
    write(rows, tmp_path / "train.data", header=False)
    test = people(40, seed=5)[["age", "income", "city", "label"]]
    test["label"] = test["label"] + "."
    (tmp_path / "train.test").write_text(
        "|1x3 Cross validator\n" + test.to_csv(index=False, header=False)
    )
    result = prepare(
        spec(
            tmp_path / "train.data",
            target="label",
            csv={"column_names": ["age", "income", "city", "label"]},
            test_source={"path": "train.test", "skip_rows": 1},
        ),
        1,
        tmp_path / "o",
    )
    manifest = result.dataset.manifest.to_json()
    assert manifest["splits"]["test"]["num_examples"] == 40
    assert (
        manifest["splits"]["train"]["num_examples"]
        + manifest["splits"]["validation"]["num_examples"]
        == 120
    )
    assert manifest["target"]["classes"] == ["no", "yes"]
    assert any("trailing '.'" in note for note in manifest["cleaning"]["notes"])
    expected = (test["label"].str.rstrip(".") == "yes").astype(int).to_numpy()
    np.testing.assert_array_equal(result.dataset.load_split("test")[1], expected)


def test_checks_fail_with_exit_1_and_write_nothing(tmp_path: Path) -> None:
    frame = people(100)
    frame.loc[:40, "income"] = np.nan
    source = write(frame, tmp_path / "p.csv")
    with pytest.raises(DataQualityError) as caught:
        prepare(
            spec(source, target="label", checks={"max_missing": 0.2}), 1, tmp_path / "data" / "o"
        )
    assert caught.value.exit_code == ExitCode.FAILED
    assert "'income' is 41.0% missing" in caught.value.message
    assert not (tmp_path / "data").exists()
    write(frame.assign(country="fr"), source)
    with pytest.raises(DataQualityError, match="'country': constant"):
        prepare(spec(source, target="label"), 1, tmp_path / "o", strict=True)
    assert prepare(spec(source, target="label"), 1, tmp_path / "o").up_to_date is False


def test_min_class_share_is_checked_on_its_own(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=100)
    frame = pd.DataFrame({"x": x, "label": ["a"] * 95 + ["b"] * 5})
    source = write(frame, tmp_path / "p.csv")
    with pytest.raises(DataQualityError, match=r"smallest class is 5\.0% of the rows"):
        prepare(spec(source, target="label", checks={"min_class_share": 0.1}), 1, tmp_path / "o")
    result = prepare(spec(source, target="label", checks={"min_class_share": 0.04}), 1, tmp_path)
    assert result.profile["class_counts"] == {"a": 95, "b": 5}


def test_rerun_is_a_no_op_and_edits_are_caught(tmp_path: Path) -> None:
    source = write(people(), tmp_path / "p.csv")
    out = tmp_path / "o"
    assert prepare(spec(source, target="label"), 1, out).up_to_date is False
    assert prepare(spec(source, target="label"), 1, out).up_to_date is True
    assert prepare(spec(source, target="label", max_categories=2), 1, out).up_to_date is False
    write(people(201), source)
    assert prepare(spec(source, target="label", max_categories=2), 1, out).up_to_date is False
    shard = out / open_store(out).manifest.to_json()["splits"]["validation"]["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(DataError, match="changed since"):
        open_store(out).load_split("validation")


def test_text_target_column_and_regression_of_several_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"x": rng.normal(0, 1, 80), "y1": rng.normal(5, 2, 80), "y2": rng.normal(0, 1, 80)}
    )
    dataset = prepare(
        spec(write(frame, tmp_path / "t.csv"), target=["y1", "y2"]), 1, tmp_path / "o"
    ).dataset
    _, y = dataset.load_split("train")
    assert (
        dataset.manifest.to_json()["task"] == "regression"
        and y.shape == (64, 2)
        and y.dtype == np.float32
    )
    assert dataset.manifest.to_json()["target"]["mean"] == pytest.approx(y.mean(axis=0), rel=1e-5)
    # the training split's range, per target, for `model.clip_to_target_range`
    assert dataset.manifest.to_json()["target"]["min"] == pytest.approx(y.min(axis=0), rel=1e-6)
    assert dataset.manifest.to_json()["target"]["max"] == pytest.approx(y.max(axis=0), rel=1e-6)


def test_parquet_nulls_in_text_columns_are_missing_values(tmp_path: Path) -> None:
    frame = people()
    frame["city"] = frame["city"].where(np.arange(len(frame)) % 5 != 0, None)  # 40 nulls
    source = tmp_path / "p.parquet"
    frame.to_parquet(source)
    result = prepare(spec(source, target="label"), 1, tmp_path / "o")
    city = next(c for c in result.profile["columns"] if c["name"] == "city")
    assert city["type"] == "categorical" and city["missing"] == 40
    assert city["distinct"] == 3  # paris, lyon, nice: the nulls are not a fourth value
    filled = next(
        f for f in result.dataset.manifest.to_json()["cleaning"]["filled"] if f["column"] == "city"
    )
    assert filled["missing"] == 40
