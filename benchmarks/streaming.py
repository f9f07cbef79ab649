"""Benchmark: training on the prepared shards streamed from disk against the in-memory path.

Measures, each in a fresh process (so peak memory is the step's own), on synthetic tables of
mixed columns (8 numbers, 3 categories, a short text, a binary label):
  1. `dltrain prepare` (time, peak RSS);
  2. `dltrain train` for one epoch of a small MLP, streamed (`train.input: stream`) and, where
     it fits, in memory (`train.input: memory`): peak RSS and epoch time, runs alternating A/B;
  3. with --evaluate SPLIT, `dltrain evaluate --split SPLIT` of the latest run read in memory and
     streamed (`--set train.input=...`): peak RSS and time;
  4. the streamed training split read alone (examples/s, consumed inside TensorFlow's runtime)
     against what the model consumes in training (examples/s).

    .venv/bin/python benchmarks/streaming.py --rows 1000000 4000000
    .venv/bin/python benchmarks/streaming.py --rows 1000000 --only-train memory   # baseline
    .venv/bin/python benchmarks/streaming.py --rows 1000000 --skip-prepare --repeats 0 \
        --evaluate train   # evaluate's peak RSS, in memory and streamed

Files go to benchmarks/work/streaming/ (git-ignored); results replace the "Streaming" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "streaming"
CHUNK = 250_000
WORDS = np.array([f"w{i:03d}" for i in range(300)])


def generate(rows: int, path: Path, seed: int = 0) -> Path:
    """A CSV of ``rows`` rows: 8 numbers (one with 1% missing), 3 categories, a short text of 4-7
    words and a binary label that depends on the numbers, one category and the text."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cities = np.array([f"city_{i:02d}" for i in range(50)])
    segments = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    channels = np.array(["web", "shop", "phone", "partner"])
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as handle:
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            columns: dict[str, np.ndarray] = {}
            for j in range(8):
                columns[f"x{j}"] = np.round(rng.normal(j * 10, 1 + j, count), 4)
            columns["x7"][rng.random(count) < 0.01] = np.nan
            columns["city"] = cities[rng.integers(0, 50, count)]
            columns["segment"] = segments[rng.integers(0, 5, count)]
            columns["channel"] = channels[rng.integers(0, 4, count)]
            length = rng.integers(4, 8, count)
            words = WORDS[rng.integers(0, len(WORDS), (count, 7))]
            columns["note"] = np.array(
                [" ".join(w[:n]) for w, n in zip(words, length, strict=True)], dtype=object
            )
            good = (words[:, 0] < "w150").astype(float)
            score = columns["x0"] + 0.2 * (columns["x1"] - 10) + good + rng.normal(0, 1, count)
            score += (columns["segment"] == "beta") * 0.5
            columns["label"] = np.where(score > 1.0, "yes", "no")
            table = pa.table(columns)
            pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=start == 0))
    tmp.rename(path)
    return path


RECIPE = """\
name: bench
seed: 7
data:
  source: {source}
  target: label
  columns:
    note: {{type: categorical}}  # tables hold no free text: a short, high-cardinality string
model:
  family: mlp
  units: [64, 32]
train:
  epochs: 1
  batch_size: {batch_size}
  input: {input}
  tensorboard: false
evaluate:
  split: validation
"""

# The CLI in a fresh interpreter; prints the process's own peak RSS after the command ended.
CLI = """
import json, os, resource, sys, time
from dltrain.cli import app
started = time.perf_counter()
try:
    app(sys.argv[1:], prog_name="dltrain")
except SystemExit as exc:
    if exc.code:
        raise
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024}))
"""

# The streamed training split read alone, one epoch consumed inside TensorFlow's runtime as fit
# consumes it (after one warm-up epoch, so the shards' one-time checksums are not counted),
# against what the benchmark's model consumes training on batches already in memory.
PIPELINE = """
import json, sys, time
from pathlib import Path
import tensorflow as tf
from dltrain.data.pipeline import make_dataset
from dltrain.data.store import open_store
from dltrain.data.streaming import StreamRequest, stream_split
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.models import MlpSpec
dataset = open_store(Path(sys.argv[1]))
batch = int(sys.argv[2])
stream = stream_split(dataset, StreamRequest(split="train", batch_size=batch, shuffle=True, seed=0))
count = lambda n, b: n + tf.cast(tf.shape(b[1])[0], tf.int64)
stream.reduce(tf.constant(0, tf.int64), count)
started = time.perf_counter()
seen = int(stream.reduce(tf.constant(0, tf.int64), count))
read_rate = seen / (time.perf_counter() - started)
shards = dataset.manifest.splits["train"].shards[:2]
parts = [dataset.read_shard(s) for s in shards]
x = {k: __import__("numpy").concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
y = __import__("numpy").concatenate([p[1] for p in parts])
data = make_dataset(dataset.manifest.model_inputs(x), y, batch, shuffle=True, seed=0).repeat()
model = build_model(MlpSpec(units=[64, 32]), ModelIO(dataset.manifest))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(data.take(20), epochs=1, verbose=0)
steps = 300
started = time.perf_counter()
model.fit(data.take(steps), epochs=1, verbose=0)
train_rate = steps * batch / (time.perf_counter() - started)
print(json.dumps({"train_rows": seen, "pipeline_examples_per_s": read_rate,
                  "model_examples_per_s": train_rate, "ratio": read_rate / train_rate}))
"""


def child(code: str, *args: str, cwd: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter in ``cwd``; its last JSON line, and the load average."""
    load = os.getloadavg()[0]
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(HERE.parent), "NO_COLOR": "1"},
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{result.stderr[-3000:]}")
    document: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    document["load_at_start"] = load
    return document


def write_recipe(folder: Path, source: Path, mode: str, batch_size: int) -> Path:
    """The benchmark's recipe in ``folder``; ``mode`` is ``train.input`` (``legacy``: no key)."""
    text = RECIPE.format(source=source, batch_size=batch_size, input=mode)
    if mode == "legacy":
        text = text.replace(f"  input: {mode}\n", "")
    path = folder / "dltrain.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def latest_run(folder: Path) -> Path:
    runs = sorted((folder / "runs" / "bench").iterdir(), key=lambda p: p.stat().st_mtime)
    return [r for r in runs if (r / "run.json").is_file()][-1]


def train_once(folder: Path, source: Path, mode: str, batch_size: int) -> dict[str, object]:
    """One epoch of ``dltrain train`` in a fresh process: peak RSS, epoch time, the input path."""
    write_recipe(folder, source, mode, batch_size)
    measured = child(CLI, "train", cwd=folder)
    run = latest_run(folder)
    history = (run / "history.csv").read_text().splitlines()
    header, last = history[0].split(","), history[-1].split(",")
    measured["epoch_seconds"] = float(last[header.index("epoch_seconds")])
    info = json.loads((run / "run.json").read_text())
    measured["input"] = info.get("input")
    measured["val_accuracy"] = float(last[header.index("val_accuracy")])
    return measured


def evaluate_once(folder: Path, mode: str, split: str) -> dict[str, object]:
    """``dltrain evaluate`` of the latest run in a fresh process: peak RSS, time, input path."""
    run = latest_run(folder)
    args = ["evaluate", "--run", str(run), "--split", split, "--no-plots"]
    measured = child(CLI, *args, "--set", f"train.input={mode}", cwd=folder)
    name = "metrics.json" if split == "test" else f"metrics-{split}.json"
    document = json.loads((run / name).read_text())
    measured["input"] = document["data"].get("input")
    measured["metrics"] = {k: document["metrics"][k] for k in ("accuracy", "roc_auc")}
    return measured


def prepare_once(folder: Path, source: Path, batch_size: int) -> dict[str, object]:
    write_recipe(folder, source, "legacy", batch_size)
    return child(CLI, "prepare", "--force", cwd=folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--modes", nargs="+", default=["stream", "memory"])
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs for the epoch time")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--pipeline", action="store_true", help="measure the pipeline alone")
    parser.add_argument("--evaluate", metavar="SPLIT", help="measure evaluate on this split")
    args = parser.parse_args()
    for rows in args.rows:
        source = generate(rows, WORK / f"mixed-{rows}.csv")
        folder = WORK / f"rows-{rows}"
        folder.mkdir(parents=True, exist_ok=True)
        if not args.skip_prepare:
            print(
                json.dumps(
                    {"rows": rows, "prepare": prepare_once(folder, source, args.batch_size)}
                ),
                flush=True,
            )
        if args.pipeline:
            data = folder / "data" / "bench"
            rates = child(PIPELINE, str(data), str(args.batch_size), cwd=folder)
            print(json.dumps({"rows": rows, "pipeline": rates}), flush=True)
        for _ in range(args.repeats):
            for mode in args.modes:
                result = train_once(folder, source, mode, args.batch_size)
                print(json.dumps({"rows": rows, "mode": mode, **result}), flush=True)
        for mode in args.modes if args.evaluate else []:
            result = evaluate_once(folder, mode, args.evaluate)
            print(json.dumps({"rows": rows, "evaluate": mode, **result}), flush=True)


if __name__ == "__main__":
    main()
