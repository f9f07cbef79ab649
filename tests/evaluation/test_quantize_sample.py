"""The examples a quantised export calibrates and is checked on: the split's first rows, read
from the shards that hold them only (a streamed run's split may not fit in memory)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dltrain.data.prepare import prepare
from dltrain.data.store import PreparedDataset
from dltrain.evaluation import quantize
from dltrain.manifest import Shard
from dltrain.recipe.data import DataSpec
from tests.conftest import synthetic_images


def test_the_sample_is_the_first_rows_read_from_the_shards_that_hold_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = synthetic_images(120, size=6)
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    spec = DataSpec.model_validate({"source": tmp_path / "digits.npz", "shard_rows": 10})
    dataset = prepare(spec, 1, tmp_path / "out").dataset
    whole_x, whole_y = dataset.load_split("train", resample=False)
    assert len(dataset.manifest.splits["train"].shards) > 3
    read: list[str] = []
    every_shard = PreparedDataset.read_shard

    def counted(self: PreparedDataset, shard: Shard, **kwargs: object) -> object:
        read.append(shard.file)
        return every_shard(self, shard, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PreparedDataset, "read_shard", counted)
    monkeypatch.setattr("dltrain.evaluation.examples.prepared_dataset", lambda run: dataset)
    run = SimpleNamespace(manifest=dataset.manifest)
    sample_x, sample_y = quantize._split(run, "train", 15)  # type: ignore[arg-type]
    assert len(read) == 2  # rows 0-14 sit in the first two shards of 10
    np.testing.assert_array_equal(sample_x, dataset.manifest.model_inputs(whole_x[:15]))
    np.testing.assert_array_equal(sample_y, whole_y[:15])
    read.clear()
    everything_x, _ = quantize._split(run, "train", 10_000)  # more than the split holds
    assert len(everything_x) == len(whole_y) and len(read) == len(set(read))
