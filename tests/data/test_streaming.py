"""Streaming the prepared shards: every row once per epoch, mixed across shards, resampled by
quota, each worker its own files, checksums checked, and training on it reproducible."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain.data.prepare import prepare
from dltrain.data.shares import validation_share
from dltrain.data.store import PreparedDataset, open_store, resampled_size
from dltrain.data.streaming import (
    InputPath,
    SplitStream,
    StreamRequest,
    WorkerShare,
    assign_shards,
    choose_input,
    head_rows,
    read_rows,
    resample_quotas,
    stream_split,
    to_dataset,
    worth_caching,
)
from dltrain.errors import DataError
from dltrain.manifest import Sampling
from dltrain.recipe.choices import InputMode
from dltrain.recipe.data import DataSpec
from tests.conftest import invoke


def write_table(path: Path, rows: int = 600, seed: int = 0) -> Path:
    """A CSV whose ``id`` column numbers the rows (kept as a feature, to follow each row)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["row", "x", "colour", "label"])
        for i in range(rows):
            x = rng.normal()
            label = "yes" if x + rng.normal(0, 0.5) > 0.9 else "no"  # ~1 in 5: imbalanced
            out.writerow([f"{i}.5", f"{x:.4f}", rng.choice(["red", "green", "blue"]), label])
    return path


@pytest.fixture
def table_store(tmp_path: Path) -> PreparedDataset:
    return prepared(tmp_path, sampling="none")


def prepared(tmp_path: Path, sampling: str, shard_rows: int = 70) -> PreparedDataset:
    source = write_table(tmp_path / f"t-{sampling}.csv")
    spec = DataSpec.model_validate(
        {
            "source": str(source),
            "target": "label",
            "shard_rows": shard_rows,
            "sampling": sampling,
            "columns": {"row": {"type": "numeric", "scaling": "none"}},
        }
    )
    return prepare(spec, 5, tmp_path / f"data-{sampling}", force=True).dataset


def rows_of(batches: object) -> tuple[list[int], list[float]]:
    """Each batch's size, and the ``row`` values in the order they came."""
    sizes, rows = [], []
    for x, y in batches:  # type: ignore[attr-defined]
        sizes.append(int(y.shape[0]))
        rows.extend(np.asarray(x["row"]).tolist())
    return sizes, rows


def shards_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files every later PreparedDataset.read_shard reads, in order (they are still read)."""
    read: list[str] = []
    real = PreparedDataset.read_shard
    monkeypatch.setattr(
        PreparedDataset,
        "read_shard",
        lambda self, s, **k: read.append(s.file) or real(self, s, **k),
    )
    return read


def test_an_epoch_is_every_row_once_and_each_epoch_another_order(
    table_store: PreparedDataset,
) -> None:
    n = table_store.manifest.splits["train"].num_examples
    assert len(table_store.manifest.splits["train"].shards) > 4  # shard_rows splits it
    request = StreamRequest(split="train", batch_size=32, shuffle=True, seed=1)
    batches = stream_split(table_store, request)
    assert int(batches.cardinality()) == -(-n // 32)
    sizes, first = rows_of(batches)
    _, second = rows_of(batches)
    assert sizes == [32] * (n // 32) + ([n % 32] if n % 32 else [])
    stored = table_store.manifest.model_inputs(table_store.load_split("train")[0])["row"]
    assert sorted(first) == sorted(second) == sorted(stored.tolist())
    assert first != second  # a new shard order and mix every epoch
    # rows of different shards share batches: the pool mixes across files
    shard_of = {row: i // 70 for i, row in enumerate(stored.tolist())}
    assert len({shard_of[r] for r in first[:32]}) > 1
    assert rows_of(stream_split(table_store, request))[1] == first  # the seed decides it all
    in_order = StreamRequest(split="train", batch_size=32, shuffle=False, seed=1)
    assert rows_of(stream_split(table_store, in_order))[1] == stored.tolist()


def test_workers_read_disjoint_shard_files_and_take_equal_steps(
    table_store: PreparedDataset,
) -> None:
    assert assign_shards(5, 2) == [[0, 2, 4], [1, 3]]
    with pytest.raises(DataError, match="data.shard_rows"):
        assign_shards(1, 2)
    seen = []
    for index in (0, 1):
        share = WorkerShare(index=index, count=2, steps=7)
        request = StreamRequest(split="train", batch_size=20, shuffle=True, seed=1, worker=share)
        stream = SplitStream(table_store, request)
        sizes, rows = rows_of(to_dataset(stream))
        assert sizes == [10] * 7  # every worker the same steps, each half the global batch
        seen.append((set(stream.files), set(rows)))
    (files_a, rows_a), (files_b, rows_b) = seen
    assert files_a.isdisjoint(files_b) and not rows_a & rows_b


def test_oversampling_by_quota_gives_the_sizes_planned(tmp_path: Path) -> None:
    store = prepared(tmp_path, "oversample")
    counts = np.asarray(store.manifest.splits["train"].class_counts)
    request = StreamRequest(split="train", batch_size=50, shuffle=True, seed=2)
    labels = np.concatenate([np.asarray(y) for _, y in stream_split(store, request)])
    assert len(labels) == store.num_examples("train") == resampled_size(counts, Sampling.OVERSAMPLE)
    assert np.bincount(labels).tolist() == [counts.max()] * 2  # balanced, as in memory
    quotas = resample_quotas(np.array([[5, 1], [3, 0], [2, 2]]), Sampling.UNDERSAMPLE)
    assert quotas.sum(axis=0).tolist() == [3, 3] and (quotas <= [[5, 1], [3, 0], [2, 2]]).all()


def test_a_sample_reads_only_the_shards_it_needs(
    table_store: PreparedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = shards_read(monkeypatch)
    x, y = head_rows(table_store, "train", 100)  # shards of 70 rows: the first two
    whole_x, whole_y = table_store.load_split("train", resample=False)
    assert read[:2] == [s.file for s in table_store.manifest.splits["train"].shards[:2]]
    assert len(read) == 2 + len(table_store.manifest.splits["train"].shards)  # + load_split
    np.testing.assert_array_equal(y, whole_y[:100])
    np.testing.assert_array_equal(x["colour"], whole_x["colour"][:100])


def test_chosen_rows_are_read_shard_by_shard(table_store: PreparedDataset) -> None:
    rows = np.array([3, 69, 70, 71, 200, 349])  # shards of 70 rows: the first, second, fifth
    x, y = read_rows(table_store, "train", rows)
    whole_x, whole_y = table_store.load_split("train", resample=False)
    np.testing.assert_array_equal(y, whole_y[rows])
    np.testing.assert_array_equal(x["colour"], whole_x["colour"][rows])
    np.testing.assert_array_equal(x["row"], whole_x["row"][rows])


def test_a_changed_shard_is_refused_on_the_streamed_path(table_store: PreparedDataset) -> None:
    shard = table_store.folder / table_store.manifest.splits["validation"].shards[0].file
    shard.write_bytes(shard.read_bytes()[:-8] + b"changed!")
    request = StreamRequest(split="validation", batch_size=32, shuffle=False, seed=1)
    with pytest.raises(DataError, match="changed since `dltrain prepare`"):
        rows_of(stream_split(table_store, request))


def test_auto_streams_splits_whose_shards_pass_the_limit(
    table_store: PreparedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert choose_input(table_store, InputMode.AUTO)[0] is InputPath.MEMORY
    assert choose_input(table_store, InputMode.STREAM)[0] is InputPath.STREAM
    monkeypatch.setattr("dltrain.data.streaming.MEMORY_MAX_SHARD_BYTES", 100)
    path, reason = choose_input(table_store, InputMode.AUTO)
    assert path is InputPath.STREAM and "> 100" in reason
    assert choose_input(table_store, InputMode.MEMORY)[0] is InputPath.MEMORY


def test_two_deterministic_streamed_runs_have_identical_histories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_table(tmp_path / "t.csv", rows=400)
    recipe = {
        "name": "tiny",
        "seed": 7,
        # oversampled and class-weighted: the epoch's batches are the resampled split's
        "data": {
            "source": str(source),
            "target": "label",
            "shard_rows": 30,
            "sampling": "oversample",
        },
        "model": {"family": "mlp", "units": [8]},
        "train": {
            "class_weight": {"yes": 2.0},
            "epochs": 2,
            "batch_size": 32,
            "input": "stream",
            "deterministic": True,
            "tensorboard": False,
        },
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("prepare")
    assert code == 0, err
    histories = []
    for _ in range(2):
        code, _, err = invoke("train", "--json")
        assert code == 0, err
        run = max((tmp_path / "runs" / "tiny").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        lines = (run / "history.csv").read_text().splitlines()
        header = lines[0].split(",")
        keep = [i for i, name in enumerate(header) if name != "epoch_seconds"]
        histories.append([[line.split(",")[i] for i in keep] for line in lines[1:]])
        info = open_store(tmp_path / "data" / "tiny")  # the shards the run read, every one
        recorded = (run / "run.json").read_text()
        assert '"path": "stream"' in recorded
        assert all(s.file in recorded for s in info.manifest.splits["train"].shards)
    assert histories[0] == histories[1] and len(histories[0]) == 2

    # train's check against the class prior read the streamed run's validation split by shard
    from dltrain.evaluation.baselines.after_training import _predicted_by_shard
    from dltrain.evaluation.run_model import open_run

    model_run = open_run(run)
    by_shard, y = _predicted_by_shard(model_run, info, 64)
    x_all, y_all = info.load_split("validation", resample=False)
    whole = model_run.predict(model_run.load_keras(), x_all, 64)
    np.testing.assert_allclose(by_shard, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y, y_all)
    assert len(info.manifest.splits["validation"].shards) > 1


def test_find_lr_sweeps_the_streamed_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_table(tmp_path / "t.csv", rows=300)
    recipe = {
        "name": "tiny",
        "data": {"source": str(source), "target": "label", "shard_rows": 50},
        "model": {"family": "mlp", "units": [4]},
        "train": {"batch_size": 16, "input": "stream", "class_weight": "balanced"},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    from dltrain.data import streaming

    streamed: list[StreamRequest] = []
    real = streaming.stream_split
    monkeypatch.setattr(streaming, "stream_split", lambda d, r: streamed.append(r) or real(d, r))
    code, _, err = invoke("find-lr", "--steps", "30")
    # 1: the sweep ran, but the loss of so few steps may not fall enough to suggest a rate
    assert code in (0, 1), err
    curve = json.loads((tmp_path / "runs" / "tiny" / "lr-finder" / "lr_finder.json").read_text())
    assert len(curve["learning_rates"]) == 30
    assert [(r.split, r.shuffle, r.batch_size) for r in streamed] == [("train", True, 16)]


def test_strings_as_fixed_width_bytes_keep_their_utf8_and_fall_back_when_wide() -> None:
    import pyarrow as pa

    from dltrain.data.columns import fixed_bytes

    column = pa.chunked_array([["ab", "", None, "héllo"], pa.array(["zz", "x"])[1:]])
    out = fixed_bytes(column)
    assert out.dtype == np.dtype("S6")
    assert out.tolist() == [b"ab", b"", b"", "héllo".encode(), b"x"]
    wide = fixed_bytes(pa.chunked_array([["a" * 500, *"bcdefgh"]]))  # padding 8 x 500: objects
    assert wide.dtype == object and wide[0] == "a" * 500


@pytest.mark.parametrize(("workers", "policy"), [(2, "file"), (7, "row")])
def test_validation_workers_each_read_their_own_rows_once_in_equal_steps(
    tmp_path: Path, workers: int, policy: str
) -> None:
    store = prepared(tmp_path, "none", shard_rows=20)
    shards = store.manifest.splits["validation"].shards
    assert len(shards) == 3  # 60 rows: two workers take files, seven take every seventh row
    stored = store.manifest.model_inputs(store.load_split("validation")[0])["row"].tolist()
    seen: list[tuple[list[int], list[float]]] = []
    for index in range(workers):
        share = validation_share(store, "validation", 16, index, workers)
        request = StreamRequest(split="validation", batch_size=16, shuffle=False, seed=1)
        stream = SplitStream(store, replace(request, worker=share))
        assert stream.policy.value == policy
        sizes, rows = rows_of(to_dataset(stream))
        assert len(sizes) == share.steps  # every worker the same steps
        assert all(size <= -(-16 // workers) for size in sizes)  # a share of the batch
        seen.append((sizes, rows))
    # every row exactly once over the workers; those short of rows padded with empty batches
    assert sorted(r for _, rows in seen for r in rows) == sorted(stored)
    assert any(0 in sizes for sizes, _ in seen) and not all(0 in sizes for sizes, _ in seen)
    if policy == "row":
        assert seen[1][1] == stored[1::7]


def test_a_small_unshuffled_split_is_read_once_then_replayed_from_memory(
    table_store: PreparedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = shards_read(monkeypatch)
    request = StreamRequest(split="train", batch_size=16, shuffle=False, seed=1, cache=True)
    batches = stream_split(table_store, request)
    first = rows_of(batches)
    reads = len(read)
    assert reads > len(table_store.manifest.splits["train"].shards)  # every shard was read
    assert rows_of(batches) == first and len(read) == reads  # then none again
    assert worth_caching(table_store, "validation")
    monkeypatch.setattr("dltrain.data.streaming.CACHE_MAX_SHARD_BYTES", 100)
    assert not worth_caching(table_store, "validation")
    with pytest.raises(ValueError, match="cannot cache"):
        stream_split(table_store, replace(request, shuffle=True))
