"""prepare at scale: the out-of-memory machinery gives the answers the in-memory code gives.

Each test shrinks a size limit (buckets, chunks, the pool size above which splits stream) so a
few thousand rows take the path that 10 million rows take.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dltrain.data import hashing, splits
from dltrain.data.hashing import HashBuckets
from dltrain.data.prefetch import prefetched
from dltrain.data.preparation.table import plan, reading
from dltrain.data.prepare import prepare
from dltrain.data.readers.text_values import needs_trim
from dltrain.data.splits import (
    TEST,
    TRAIN,
    VALIDATION,
    SplitRequest,
    assign_in_chunks,
    split_indices,
)
from dltrain.data.store import ShardLayout, ShardWriter, open_store
from dltrain.data.transforms import NumericFit
from dltrain.errors import DataError
from dltrain.recipe.data import Missing, SplitMethod
from dltrain.recipe.schema import DataSpec, SplitSpec


def write_table(path: Path, rows: int, seed: int = 0) -> pd.DataFrame:
    """A table with repeated rows (duplicates) and rows whose features repeat with another
    label (leakage candidates), three imbalanced classes and a few missing targets."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.integers(0, 40, rows).astype(float),
            "city": rng.choice(["oslo", "lima", "pune"], rows),
            "label": rng.choice(["a", "b", "c"], rows, p=[0.6, 0.3, 0.1]),
        }
    )
    frame.loc[rng.random(rows) < 0.01, "label"] = ""
    frame.insert(0, "id", np.arange(rows))
    frame.to_csv(path, index=False)
    return frame


def expected_duplicates(frame: pd.DataFrame) -> int:
    kept = frame[frame["label"] != ""]
    return int(kept.duplicated(subset=["x", "city", "label"]).sum())


def prepared(tmp_path: Path, source: Path, name: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    spec = DataSpec.model_validate({"source": source, "target": "label"})
    result = prepare(spec, 7, tmp_path / name)
    return result.dataset.manifest.to_json(), result.profile


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the large-source paths: many hash buckets, chunked split assignment."""
    monkeypatch.setattr(hashing, "BUCKET_BYTES", 256)
    monkeypatch.setattr(plan, "SKLEARN_LIMIT", 100)
    monkeypatch.setattr(splits, "CHUNK_ROWS", 333)


def test_streamed_prepare_finds_what_the_data_holds(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "t.csv"
    frame = write_table(source, 3000)
    manifest, profile = prepared(tmp_path, source, "streamed")
    assert HashBuckets(tmp_path, ("k",), source.stat().st_size).count == 256
    duplicates = expected_duplicates(frame)
    assert duplicates > 100 and profile["duplicate_rows"] == duplicates
    kept = frame[frame["label"] != ""].drop_duplicates(subset=["x", "city", "label"])
    sizes = {name: entry["num_examples"] for name, entry in manifest["splits"].items()}
    assert sum(sizes.values()) == len(kept)
    assert sizes["test"] == round(0.1 * len(kept)) and sizes["validation"] == round(0.1 * len(kept))
    # Stratified: each class's share of each split is its share of the pool, to the row.
    pool = kept["label"].value_counts()
    for name in ("validation", "test"):
        classes, counted = manifest["target"]["classes"], manifest["splits"][name]["class_counts"]
        counts = dict(zip(classes, counted, strict=True))
        for label, count in counts.items():
            assert abs(count - pool[label] * sizes[name] / len(kept)) < 1
    # Every kept row is stored once, in exactly one split.
    store = open_store(tmp_path / "streamed")
    stored = np.concatenate([store.load_split(s)[0]["id"] for s in ("train", "validation", "test")])
    assert sorted(stored.astype(int).tolist()) == sorted(kept["id"].tolist())
    # Leakage: validation/test rows whose features equal a training row's, counted directly.
    splits_of = {}
    for name in ("train", "validation", "test"):
        x, _ = store.load_split(name)
        for row_id in x["id"].astype(int):
            splits_of[row_id] = name
    features = kept.assign(split=kept["id"].map(splits_of))
    train_keys = set(map(tuple, features[features["split"] == "train"][["x", "city"]].values))
    for name in ("validation", "test"):
        rows = features[features["split"] == name][["x", "city"]].values
        assert profile["leaking_rows"][name] == sum(tuple(r) in train_keys for r in rows)
    # The bucket files and the spill are gone from the dataset folder.
    assert not [p for p in (tmp_path / "streamed").iterdir() if p.name.startswith(".")]


def test_one_bucket_and_many_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "t.csv"
    write_table(source, 2000, seed=3)
    _, one = prepared(tmp_path, source, "one")
    monkeypatch.setattr(hashing, "BUCKET_BYTES", 64)
    _, many = prepared(tmp_path, source, "many")
    assert one["duplicate_rows"] == many["duplicate_rows"] > 0
    assert one["leaking_rows"] == many["leaking_rows"]


def test_hash_buckets_keep_every_record_in_row_order(tmp_path: Path) -> None:
    buckets = HashBuckets(tmp_path, ("row",), 100 * hashing.BUCKET_BYTES)
    assert buckets.count == 128
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    buckets.add("row", hashes[:3000], 0)
    buckets.add("row", hashes[3000:], 3000)
    seen = []
    for b, records in enumerate(buckets.buckets("row")):
        assert (records["hash"] >> np.uint64(57) == b).all()
        assert (np.diff(records["row"].astype(np.int64)) > 0).all()
        assert (hashes[records["row"].astype(np.int64)] == records["hash"]).all()
        seen.append(records["row"])
    assert sorted(np.concatenate(seen).tolist()) == list(range(5000))
    buckets.close()
    assert not list(tmp_path.iterdir())


def counts_by_class(assigned: np.ndarray, labels: np.ndarray) -> dict[tuple[int, int], int]:
    return {
        (c, s): int(((assigned == s) & (labels == c)).sum())
        for c in np.unique(labels)
        for s in (TRAIN, VALIDATION, TEST)
    }


@pytest.mark.parametrize("has_test", [False, True])
def test_chunked_assignment_gives_the_exact_stratified_shares(
    monkeypatch: pytest.MonkeyPatch, has_test: bool
) -> None:
    monkeypatch.setattr(splits, "CHUNK_ROWS", 1000)
    rng = np.random.default_rng(1)
    labels = rng.choice(4, 10_000, p=[0.7, 0.2, 0.09, 0.01]).astype(np.int16)
    pool = rng.random(10_000) > 0.05
    spec = SplitSpec(validation=0.15, test=0.1)
    out = np.full(10_000, -1, np.int8)
    request = SplitRequest(
        spec=spec, seed=5, method=SplitMethod.STRATIFIED, has_test=has_test, source="s"
    )
    assign_in_chunks(pool, out, replace(request, labels=labels))
    assert (out[~pool] == -1).all() and (out[pool] >= 0).all()
    # The reference: the in-memory split of the same pool (largest remainders per class).
    monkeypatch.setattr(splits, "SKLEARN_LIMIT", 0)
    pooled = labels[pool]
    reference = np.empty(len(pooled), np.int8)
    for s, rows in enumerate(split_indices(len(pooled), replace(request, labels=pooled))):
        reference[rows] = s
    assert counts_by_class(out[pool], pooled) == counts_by_class(reference, pooled)
    # Seeded: the same seed gives the same rows, another seed other rows.
    again = np.full(10_000, -1, np.int8)
    assign_in_chunks(pool, again, replace(request, labels=labels))
    other = np.full(10_000, -1, np.int8)
    assign_in_chunks(pool, other, replace(request, seed=6, labels=labels))
    assert (again == out).all() and (other != out).any()


def test_chunked_assignment_is_uniform_over_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each row's chance of landing in test is the test share, wherever its chunk lies.
    monkeypatch.setattr(splits, "CHUNK_ROWS", 64)
    pool = np.ones(640, bool)
    hits = np.zeros(640)
    for seed in range(400):
        out = np.full(640, -1, np.int8)
        spec = SplitSpec(validation=0.1, test=0.25)
        request = SplitRequest(
            spec=spec, seed=seed, method=SplitMethod.RANDOM, has_test=False, source="s"
        )
        assign_in_chunks(pool, out, request)
        assert (out == TEST).sum() == 160
        hits += out == TEST
    by_chunk = hits.reshape(10, 64).mean(axis=1) / 400
    assert np.allclose(by_chunk, 0.25, atol=0.03)


def test_chunked_assignment_refuses_a_single_example_class() -> None:
    labels = np.array([0] * 50 + [1] * 49 + [2], np.int16)
    with pytest.raises(DataError, match="single example"):
        assign_in_chunks(
            np.ones(100, bool),
            np.full(100, -1, np.int8),
            SplitRequest(
                spec=SplitSpec(),
                seed=0,
                method=SplitMethod.STRATIFIED,
                has_test=False,
                source="s",
                labels=labels,
                class_names=["a", "b", "rare"],
            ),
        )


def test_numeric_fit_sample_is_the_smallest_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from dltrain.data import transforms

    monkeypatch.setattr(transforms, "RESERVOIR", 50)
    rng = np.random.default_rng(2)
    batches = [rng.normal(i, 1, 37) for i in range(30)]
    fit = NumericFit("x", seed=9)
    for batch in batches:
        fit.update(batch)
    keys_rng = np.random.default_rng(9)  # the reservoir's draws: one key per value, in order
    values = np.concatenate(batches)
    keys = np.concatenate([keys_rng.random(len(b)) for b in batches])
    expected = values[np.argsort(keys)[:50]]
    assert fit.fill_value(Missing.MEDIAN, None) == pytest.approx(float(np.median(expected)))
    assert fit.count == len(values) and fit.mean == pytest.approx(values.mean())


def test_prefetched_yields_everything_in_order_and_raises_the_producers_error() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing() -> Iterator[int]:
        yield 1
        raise DataError("bad row")

    got = []
    with pytest.raises(DataError, match="bad row"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]


def test_prefetched_stops_the_producer_when_abandoned() -> None:
    closed = threading.Event()
    produced = []

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    for item in prefetched(endless(), depth=2):
        if item == 5:
            break
    assert closed.is_set()  # the generator's finally ran (it closes the CSV reader there)
    assert len(produced) <= 5 + 1 + 2 + 1  # never more than depth ahead


def test_whitespace_is_trimmed_only_where_present() -> None:
    batch = pa.record_batch(
        {"a": pa.array(["x", " y", "z\u00a0"]), "b": pa.array(["p", "q r", ""])}
    )
    types = {"a": pa.string(), "b": pa.string()}
    columns = reading._strip(batch, types, null_as="")
    assert columns["a"].to_pylist() == ["x", "y", "z"]
    # nothing to trim: the very same buffers, not a trimmed copy
    assert columns["b"].buffers()[2].address == batch.column("b").buffers()[2].address
    sliced = pa.array([" a", "b", "c "]).slice(1, 1)
    assert not needs_trim(sliced)


def test_background_shards_equal_foreground_ones(tmp_path: Path) -> None:
    table = pa.table({"x": np.arange(50_000, dtype=np.float32), "c": ["a", "b"] * 25_000})
    y = np.arange(50_000) % 3
    entries = {}
    for background in (False, True):
        folder = tmp_path / str(background)
        folder.mkdir()
        writer = ShardWriter(folder, layout=ShardLayout.ARROW, num_classes=3, background=background)
        writer.rows_per_shard = 7_000
        for start in range(0, 50_000, 9_000):
            writer.write("train", table.slice(start, 9_000), y[start : start + 9_000])
        entries[background] = writer.close()
    assert entries[True] == entries[False]  # the same names, sizes and checksums
    assert len(entries[True]["train"].shards) == 8


def test_background_shard_errors_surface_at_close(tmp_path: Path) -> None:
    writer = ShardWriter(
        tmp_path / "gone", layout=ShardLayout.ARROW, num_classes=None, background=True
    )
    writer.write("train", pa.table({"x": [1.0]}), np.array([1.0], np.float32))
    with pytest.raises(OSError):
        writer.close()


@pytest.mark.slow
def test_shell_prepare_of_a_table_above_every_in_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 300k rows: past the pool size where splits stream (no limit shrunk there), and with a
    # bucket per MB so the 9 MB source spreads its hashes over 16 buckets; `dltrain prepare`
    # from the shell, twice.
    from tests.conftest import invoke

    monkeypatch.setattr(hashing, "BUCKET_BYTES", 1 << 20)
    source = tmp_path / "big.csv"
    frame = write_table(source, 300_000, seed=5)
    assert len(frame) > splits.SKLEARN_LIMIT
    (tmp_path / "dltrain.yaml").write_text(
        f"name: big\ndata:\n  source: {source}\n  target: label\n  clean: {{duplicates: drop}}\n"
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke("prepare", "--json")
    assert code == 0, err
    document = json.loads(out)
    kept = frame[frame["label"] != ""]
    assert document["profile"]["duplicate_rows"] == expected_duplicates(frame)
    pool = len(kept) - expected_duplicates(frame)
    sizes = {k: v["num_examples"] for k, v in document["manifest"]["splits"].items()}
    assert sizes == {
        "train": pool - 2 * round(0.1 * pool),
        "validation": round(0.1 * pool),
        "test": round(0.1 * pool),
    }
    again = json.loads(invoke("prepare", "--json")[1])
    assert again["up_to_date"] is True  # the fingerprint hashed beside the build matches


def test_a_large_table_prepares_without_importing_scikit_learn(tmp_path: Path) -> None:
    # Importing scikit-learn costs ~1 s of CPU and 80 MB; a table above SKLEARN_LIMIT rows is
    # split by our own code, so its prepare must not pay for it (a subprocess: the suite has
    # imported scikit-learn long before this test).
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "label": rng.choice(["a", "b"], 300)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from dltrain.data import splits\n"
        "from dltrain.data.prepare import prepare\n"
        "from dltrain.recipe.data import DataSpec\n"
        "splits.SKLEARN_LIMIT = 10\n"
        f"source = Path(r'{tmp_path / 't.csv'}')\n"
        "spec = DataSpec.model_validate({'source': source, 'target': 'label'})\n"
        f"prepare(spec, 1, Path(r'{tmp_path / 'out'}'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
