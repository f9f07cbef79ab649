"""Benchmark: `dltrain prepare` on large synthetic CSVs against pandas.read_csv.

Measures, each in a fresh process (so peak memory is the step's own):
  1. pandas.read_csv of the 1M-row file (time, peak RSS): the baseline;
  2. prepare of the same file (time, peak RSS; goal <= 1.5x pandas' time), timed two ways:
     the call alone (``prepare()`` against ``pd.read_csv()``, imports done) and the whole fresh
     process as a shell user sees it (Python start-up and imports included on both sides);
  3. prepare of the 10M-row, ~1 GB file (goal: peak RSS < 1.5 GB, flat from 1M to 10M);
  4. the prepared training split read through make_dataset (examples/s) against what an MLP
     consumes per second in training (goal: the pipeline >= 10x faster).

    .venv/bin/python benchmarks/prepare_tables.py                 # 1M and 10M rows
    .venv/bin/python benchmarks/prepare_tables.py --rows 1000000  # 1M only

Files go to benchmarks/work/ (git-ignored); results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from results import write_section

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "prepare_tables"
CHUNK = 500_000


def generate(rows: int, path: Path, seed: int = 0) -> Path:
    """A CSV of ``rows`` rows, ~100 bytes each: an id, 8 numbers (one with 1% missing), two
    categories and a binary label that depends on them."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cities = np.array([f"city_{i:02d}" for i in range(50)])
    segments = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as handle:
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            columns: dict[str, np.ndarray] = {"id": np.arange(start, start + count)}
            for j in range(8):
                columns[f"x{j}"] = np.round(rng.normal(j * 10, 1 + j, count), 4)
            columns["x7"][rng.random(count) < 0.01] = np.nan
            columns["city"] = cities[rng.integers(0, 50, count)]
            columns["segment"] = segments[rng.integers(0, 5, count)]
            score = columns["x0"] + 0.2 * (columns["x1"] - 10) + rng.normal(0, 1, count)
            columns["label"] = np.where(score > 0.5, "yes", "no")
            table = pa.table(columns)
            pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=start == 0))
    tmp.rename(path)
    return path


# cpu_seconds: user + system time of the call, every thread of the process included; on a
# loaded machine it is steadier than wall time, and it is what a busy CI runner pays.
PANDAS = """
import resource, sys, time, json
import pandas as pd
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
started, cpu_started = time.perf_counter(), cpu()
frame = pd.read_csv(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": len(frame), "cpu_seconds": cpu() - cpu_started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PREPARE = """
import resource, sys, time, json
from pathlib import Path
from dltrain.recipe.data import DataSpec
from dltrain.data.prepare import prepare
spec = DataSpec.model_validate({"source": sys.argv[1], "target": "label"})
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
started, cpu_started = time.perf_counter(), cpu()
result = prepare(spec, 42, Path(sys.argv[2]), force=True)
seconds = time.perf_counter() - started
splits = {k: v.num_examples for k, v in result.dataset.manifest.splits.items()}
print(json.dumps({"seconds": seconds, "splits": splits, "cpu_seconds": cpu() - cpu_started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The least any prepare must do with the file, with none of its analysis: parse it (pyarrow's
# multi-threaded reader, all cores), fingerprint it (SHA-256) and store it (an Arrow IPC file,
# as dltrain's shards). No profile, duplicates, split or fit.
FLOOR = """
import hashlib, resource, sys, tempfile, time, json
import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.ipc
pa.set_memory_pool(pa.jemalloc_memory_pool())
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
started, cpu_started = time.perf_counter(), cpu()
table = pacsv.read_csv(sys.argv[1])
parsed = time.perf_counter() - started
with open(sys.argv[1], "rb") as handle:
    hashlib.file_digest(handle, "sha256")
with tempfile.TemporaryDirectory() as folder:
    with pa.OSFile(folder + "/t.arrow", "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "parse_seconds": parsed, "cpu_seconds": cpu() - cpu_started}))
"""

PIPELINE = """
import json, sys, time
from pathlib import Path
import numpy as np
from dltrain.backend import keras
from dltrain.data.pipeline import make_dataset
from dltrain.data.store import open_store
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.models import MlpSpec
dataset = open_store(Path(sys.argv[1]))
started = time.perf_counter()
x, y = dataset.load_split("train")
load_seconds = time.perf_counter() - started
batch = int(sys.argv[2])
data = make_dataset(x, y, batch, shuffle=True, seed=0)
import tensorflow as tf
count = lambda n, batch: n + tf.cast(tf.shape(batch[1])[0], tf.int64)  # noqa: E731
data.take(5).reduce(tf.constant(0, tf.int64), count)
started = time.perf_counter()  # one epoch, consumed in TensorFlow's runtime as fit consumes it
seen = int(data.reduce(tf.constant(0, tf.int64), count))
read_rate = seen / (time.perf_counter() - started)
model = build_model(MlpSpec(units=[128, 64]), ModelIO(dataset.manifest))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
steps = 400
model.fit(data.take(20), epochs=1, verbose=0)  # build and trace first
started = time.perf_counter()
model.fit(data.take(steps), epochs=1, verbose=0)
train_rate = steps * batch / (time.perf_counter() - started)
print(json.dumps({"load_seconds": load_seconds, "train_rows": len(y), "batch_size": batch,
                  "pipeline_examples_per_s": read_rate, "training_examples_per_s": train_rate}))
"""


def child(code: str, *args: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; its JSON line, plus the process's own wall time
    (start-up and imports included) and the 1-minute load average when it ended."""
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{result.stderr[-3000:]}")
    document: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    document["process_seconds"] = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the whole process's CPU, start-up and imports included: what a shell user's machine pays
    document["process_cpu_seconds"] = (after.ru_utime - children.ru_utime) + (
        after.ru_stime - children.ru_stime
    )
    document["load"] = os.getloadavg()[0]
    return document


def median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run with the median time (the machine is shared: the minimum flatters, the mean
    carries the outliers)."""
    return sorted(runs, key=lambda r: float(r["seconds"]))[len(runs) // 2]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="median of N for the 1M timings")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        source = generate(rows, WORK / f"synthetic-{rows}.csv")
        size_mb = source.stat().st_size / 1e6
        repeats = args.repeats if rows <= 2_000_000 else 1
        load_before = os.getloadavg()[0]
        runs: list[tuple[dict[str, object], dict[str, object]]] = []
        floors: list[tuple[dict[str, object], dict[str, object]]] = []
        for _ in range(repeats):  # interleaved, so both see the same machine load
            runs.append(
                (
                    child(PANDAS, str(source)),
                    child(PREPARE, str(source), str(WORK / f"data-{rows}")),
                )
            )
            if rows <= 2_000_000:
                floors.append((child(PANDAS, str(source)), child(FLOOR, str(source))))
        pandas = median_run([r[0] for r in runs])
        prepared = median_run([r[1] for r in runs])
        # Ratios run by run: each pair ran back to back, so both saw about the same load.
        call_ratios = sorted(float(b["seconds"]) / float(a["seconds"]) for a, b in runs)  # type: ignore[arg-type]
        process_ratios = sorted(
            float(b["process_seconds"]) / float(a["process_seconds"])  # type: ignore[arg-type]
            for a, b in runs
        )
        entry = {
            "rows": rows,
            "csv_mb": round(size_mb, 1),
            "pandas_seconds": round(float(pandas["seconds"]), 2),  # type: ignore[arg-type]
            "pandas_peak_rss_mb": round(float(pandas["peak_rss_mb"])),  # type: ignore[arg-type]
            "prepare_seconds": round(float(prepared["seconds"]), 2),  # type: ignore[arg-type]
            "prepare_peak_rss_mb": round(float(prepared["peak_rss_mb"])),  # type: ignore[arg-type]
            "prepare_rows_per_s": round(rows / float(prepared["seconds"])),  # type: ignore[arg-type]
            "splits": prepared["splits"],
        }
        entry["ratio_to_pandas"] = round(call_ratios[len(call_ratios) // 2], 2)
        entry["pandas_process_seconds"] = round(float(pandas["process_seconds"]), 2)  # type: ignore[arg-type]
        entry["prepare_process_seconds"] = round(float(prepared["process_seconds"]), 2)  # type: ignore[arg-type]
        entry["process_ratio_to_pandas"] = round(process_ratios[len(process_ratios) // 2], 2)
        entry["ratios"] = [round(r, 2) for r in call_ratios]
        cpu_ratios = sorted(
            float(b["cpu_seconds"]) / float(a["cpu_seconds"])  # type: ignore[arg-type]
            for a, b in runs
        )
        entry["pandas_cpu_seconds"] = round(float(pandas["cpu_seconds"]), 2)  # type: ignore[arg-type]
        entry["prepare_cpu_seconds"] = round(float(prepared["cpu_seconds"]), 2)  # type: ignore[arg-type]
        entry["cpu_ratio_to_pandas"] = round(cpu_ratios[len(cpu_ratios) // 2], 2)
        process_cpu_ratios = sorted(
            float(b["process_cpu_seconds"]) / float(a["process_cpu_seconds"])  # type: ignore[arg-type]
            for a, b in runs
        )
        entry["process_cpu_ratio_to_pandas"] = round(
            process_cpu_ratios[len(process_cpu_ratios) // 2], 2
        )
        entry["process_cpu_ratios"] = [round(r, 2) for r in process_cpu_ratios]
        loads = [load_before] + [float(r[i]["load"]) for r in runs for i in (0, 1)]  # type: ignore[arg-type]
        entry["load_average"] = f"{min(loads):.1f}-{max(loads):.1f}"
        if floors:
            entry["floor"] = {
                key: sorted(float(b[key]) / float(a["seconds"]) for a, b in floors)  # type: ignore[arg-type]
                for key in ("seconds", "parse_seconds")
            }
            entry["floor"]["pandas_seconds"] = sorted(float(a["seconds"]) for a, _ in floors)  # type: ignore[arg-type, index]
            entry["floor"]["floor_seconds"] = sorted(float(b["seconds"]) for _, b in floors)  # type: ignore[arg-type, index]
        if rows <= 2_000_000:
            entry["pipeline"] = child(PIPELINE, str(WORK / f"data-{rows}"), str(args.batch_size))
        print(json.dumps(entry), flush=True)
        results.append(entry)
    if not args.no_write:
        append_results(results, args)


HEADING = "## prepare on large synthetic tables"


def append_results(results: list[dict[str, object]], args: argparse.Namespace) -> None:
    """Write the section into RESULTS.md, replacing the previous run's section."""
    lines = [
        f"{HEADING} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"`.venv/bin/python benchmarks/prepare_tables.py --rows {' '.join(map(str, args.rows))}`"
        f" on {platform.machine()}, {os.cpu_count()} CPU cores, no GPU. Synthetic CSV: id, 8 "
        f"numbers (x7 1% missing), 2 categories (50 and 5 values), a yes/no label; ~100 bytes a "
        f"row. Each step in a fresh process; peak RSS is the process's maximum resident set "
        f"(Python, pyarrow and numpy included). For 1M rows, {args.repeats} interleaved pairs "
        f"(pandas, then prepare); times are medians and each ratio is the median of the "
        f"pairs' own ratios; 10M rows ran once. The machine is shared with other engineers' "
        f"training and test runs; the load column is the 1-minute load average's range over "
        f"the row's runs (2 cores: above 2, every process waits for a core).",
        "",
        "Three views of the time. *Call*: `prepare()` against `pd.read_csv()`, timed inside "
        "processes that have already imported everything. *Process*: each fresh process's wall "
        "time from start to exit, as a shell user sees it (Python start-up and imports "
        "included: pandas alone on one side; pyarrow, pandas and scikit-learn on the other). "
        "*CPU*: user + system seconds of the call, all threads (prepare parses on one thread "
        "while another profiles and hashes, so on an idle 2-core machine its wall time is "
        "below its CPU time; on a loaded one it is not). *Process CPU*: the same for the whole "
        "fresh process, start-up and imports included (issue #14's goal: <= 2.5x).",
        "",
        "| rows | CSV | pandas.read_csv | its peak RSS | dltrain prepare | its peak RSS | "
        "prepare / pandas (call) | process: pandas, prepare, ratio | CPU: pandas, prepare, "
        "ratio | process CPU ratio | prepare rows/s | load |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['csv_mb']} MB | {r['pandas_seconds']} s | "
            f"{r['pandas_peak_rss_mb']} MB | {r['prepare_seconds']} s | "
            f"{r['prepare_peak_rss_mb']} MB | {r['ratio_to_pandas']}x "
            f"(pairs: {', '.join(f'{x}' for x in r['ratios'])}) | "  # type: ignore[attr-defined]
            f"{r['pandas_process_seconds']} s, {r['prepare_process_seconds']} s, "
            f"{r['process_ratio_to_pandas']}x | {r['pandas_cpu_seconds']} s, "
            f"{r['prepare_cpu_seconds']} s, {r['cpu_ratio_to_pandas']}x | "
            f"**{r['process_cpu_ratio_to_pandas']}x** (pairs: "
            f"{', '.join(f'{x}' for x in r['process_cpu_ratios'])}) | "  # type: ignore[attr-defined]
            f"{r['prepare_rows_per_s']:,} | "
            f"{r['load_average']} |"
        )
    for r in results:
        floor = r.get("floor")
        if isinstance(floor, dict):
            middle = len(floor["seconds"]) // 2
            lines += [
                "",
                f"The floor on the {r['rows']:,}-row file, in pairs interleaved with pandas "
                f"the same "
                f"way: pyarrow's multi-threaded `read_csv`, the file's SHA-256 and one Arrow IPC "
                f"write of the parsed table, with none of prepare's analysis. It took "
                f"{floor['floor_seconds'][middle]:.2f} s against pandas' "
                f"{floor['pandas_seconds'][middle]:.2f} s: **{floor['seconds'][middle]:.2f}x** "
                f"(pairs: {', '.join(f'{x:.2f}' for x in floor['seconds'])}); the parse alone "
                f"{floor['parse_seconds'][middle]:.2f}x "
                f"(pairs: {', '.join(f'{x:.2f}' for x in floor['parse_seconds'])}).",
            ]
    for r in results:
        pipeline = r.get("pipeline")
        if isinstance(pipeline, dict):
            read, train = pipeline["pipeline_examples_per_s"], pipeline["training_examples_per_s"]
            lines += [
                "",
                f"Input pipeline on the {r['rows']:,}-row prepared training split "
                f"({pipeline['train_rows']:,} rows, batch {pipeline['batch_size']}): "
                f"`make_dataset` delivers {read:,.0f} examples/s; an MLP (128, 64) with the "
                f"in-model preprocessing trains on {train:,.0f} examples/s, so the pipeline is "
                f"{read / train:.1f}x faster than the model consumes (goal >= 10x). Loading the "
                f"split from its Arrow shards took {pipeline['load_seconds']:.1f} s.",
            ]
    section = "\n".join(lines) + "\n"
    write_section(section, HEADING)


if __name__ == "__main__":
    main()
