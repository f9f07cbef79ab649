"""The prepared-dataset contract: what prepare writes is what every later command reads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.data.prepare import prepare
from dltrain.data.store import open_store
from dltrain.errors import DataError
from dltrain.manifest import (
    ClassTarget,
    FeatureKind,
    ImagePreprocessing,
    Manifest,
    NumericTarget,
    SequenceFeatures,
    TableFeatures,
    TablePreprocessing,
    TextFeatures,
    parse_manifest,
    read_manifest,
)
from dltrain.recipe.data import ColumnType, DataSpec, Missing, Sampling
from dltrain.runs import MANIFEST_FILE
from dltrain.tasks import Task


def prepared_table(tmp_path: Path) -> Manifest:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(120),
            "size": rng.normal(50, 10, 120).round(2),
            "city": rng.choice(["paris", "lyon", ""], 120),
            "label": rng.choice(["no", "yes"], 120),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    spec = DataSpec.model_validate({"source": tmp_path / "t.csv", "target": "label"})
    return prepare(spec, 1, tmp_path / "table").dataset.manifest


def prepared_series(tmp_path: Path) -> Manifest:
    days = pd.date_range("2024-01-01", periods=80, freq="D")
    frame = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "temp": np.sin(np.arange(80))})
    frame.to_csv(tmp_path / "s.csv", index=False)
    spec = DataSpec.model_validate(
        {"source": tmp_path / "s.csv", "target": "temp", "series": {"lookback": 4}}
    )
    return prepare(spec, 1, tmp_path / "series").dataset.manifest


def test_a_table_manifest_reads_as_typed_fields(tmp_path: Path) -> None:
    manifest = prepared_table(tmp_path)
    assert manifest.task is Task.BINARY
    assert isinstance(manifest.features, TableFeatures)
    assert isinstance(manifest.target, ClassTarget) and manifest.target.classes == ["no", "yes"]
    types = {c.name: c.type for c in manifest.features.columns}
    assert types["size"] is ColumnType.NUMERIC and types["city"] is ColumnType.CATEGORICAL
    assert manifest.features.passthrough == ["id"]  # an identifier: profiled, never a feature
    pre = manifest.preprocessing_as(TablePreprocessing)
    assert [n.column for n in pre.numeric] == ["size"] and pre.numeric[0].missing is Missing.MEDIAN
    assert pre.sampling is Sampling.NONE
    assert sum(split.num_examples for split in manifest.splits.values()) == 120


def test_a_series_manifest_has_a_numeric_target(tmp_path: Path) -> None:
    manifest = prepared_series(tmp_path)
    assert manifest.task is Task.FORECASTING
    assert isinstance(manifest.features, SequenceFeatures) and manifest.features.shape == [4, 1]
    assert isinstance(manifest.target, NumericTarget) and manifest.target.horizon == 1
    assert manifest.series is not None and manifest.series.steps == 80
    with pytest.raises(DataError, match="has no ClassTarget"):
        manifest.target_as(ClassTarget)


def test_every_kind_round_trips_through_its_json(tmp_path: Path, idx_folder: Path) -> None:
    texts = tmp_path / "texts"
    for label, words in (("pos", "good great fine"), ("neg", "bad awful poor")):
        (texts / label).mkdir(parents=True)
        for i in range(12):
            (texts / label / f"{i}.txt").write_text(f"{words} number {i}")
    images = prepare(DataSpec(source=idx_folder), 1, tmp_path / "images").dataset.manifest
    text = prepare(DataSpec(source=texts), 1, tmp_path / "text").dataset.manifest
    manifests = [images, prepared_table(tmp_path), text, prepared_series(tmp_path)]
    assert [m.features.kind for m in manifests] == list(FeatureKind)
    assert isinstance(text.features, TextFeatures)
    assert isinstance(images.preprocessing, ImagePreprocessing)
    for manifest in manifests:
        document = json.loads(json.dumps(manifest.to_json()))
        assert parse_manifest(document, Path(MANIFEST_FILE)) == manifest
        # Enums are written as the strings users see, and read back as the same members.
        assert document["features"]["kind"] == manifest.features.kind.value
        assert FeatureKind(document["features"]["kind"]) is manifest.features.kind


def test_a_dataset_prepared_by_an_older_version_is_refused(
    idx_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prepare(DataSpec(source=idx_folder), 1, out)
    document = json.loads((out / MANIFEST_FILE).read_text())
    document["manifest_version"] = 1
    (out / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"version 1.*`dltrain prepare --force`"):
        open_store(out)


def test_an_edited_manifest_is_refused_with_the_field_named(
    idx_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prepare(DataSpec(source=idx_folder), 1, out)
    document = json.loads((out / MANIFEST_FILE).read_text())
    document["features"]["kind"] = "video"
    (out / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"features.*prepare --force"):
        read_manifest(out / MANIFEST_FILE)
    document["features"]["kind"] = "image"
    document["preprocessing"]["colour"] = "red"  # a key this version does not know
    (out / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"preprocessing\.image\.colour"):
        read_manifest(out / MANIFEST_FILE)


def test_preprocessing_must_fit_the_feature_kind(idx_folder: Path, tmp_path: Path) -> None:
    document = prepare(DataSpec(source=idx_folder), 1, tmp_path / "out").dataset.manifest.to_json()
    document["preprocessing"] = {"mean": [0.0], "variance": [1.0]}  # a series' scaling
    with pytest.raises(DataError, match="not a valid prepared-dataset manifest"):
        parse_manifest(document, Path(MANIFEST_FILE))
