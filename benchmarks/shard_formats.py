"""Which file format prepare's table shards should use: write cost, size, and read speed.

One shard as prepare writes it (250k rows of the prepare benchmark's synthetic table: numbers
with NaN, categories, short text), written and read back the way the store does, in each
candidate format; alternating rounds, medians, CPU seconds of this process:
  - Parquet with LZ4 (today), Parquet with zstd, Parquet uncompressed,
  - Arrow IPC (Feather v2) uncompressed, with LZ4 and with zstd.
Reading is the whole of ``PreparedDataset``'s path: bytes from disk, decode, every column to
NumPy (numbers float32, text object arrays), as training consumes them.

    .venv/bin/python benchmarks/shard_formats.py [--rows 250000] [--rounds 3] [--write-results]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from dltrain.data.store import column_array


def synthetic_shard(rows: int, seed: int = 0) -> pa.Table:
    """Numbers (some missing), categories of a few and of many values, short text, a target."""
    rng = np.random.default_rng(seed)
    numbers = {f"x{i}": rng.normal(size=rows).astype(np.float32) for i in range(8)}
    numbers["x0"][rng.random(rows) < 0.05] = np.nan
    return pa.table(
        {
            **numbers,
            "city": rng.choice(["paris", "lyon", "nice", "lille", ""], rows),
            "job": rng.choice([f"job-{i}" for i in range(300)], rows),
            "note": np.char.add("note ", rng.integers(0, 50_000, rows).astype(str)),
            "__y__": rng.integers(0, 2, rows),
        }
    )


def writers() -> dict[str, Callable[[pa.Table, Path], None]]:
    strings = ["city", "job", "note"]
    return {
        "parquet lz4 (today)": lambda t, p: pq.write_table(
            t, p, compression="lz4", use_dictionary=strings
        ),
        "parquet zstd": lambda t, p: pq.write_table(
            t, p, compression="zstd", use_dictionary=strings
        ),
        "parquet none": lambda t, p: pq.write_table(
            t, p, compression="none", use_dictionary=strings
        ),
        "arrow ipc none": lambda t, p: feather.write_feather(t, p, compression="uncompressed"),
        "arrow ipc lz4": lambda t, p: feather.write_feather(t, p, compression="lz4"),
        "arrow ipc zstd": lambda t, p: feather.write_feather(t, p, compression="zstd"),
    }


def read_back(path: Path) -> int:
    """Read a shard as the store does: bytes, decode, every column to NumPy."""
    blob = path.read_bytes()
    if path.suffix == ".parquet":
        table = pq.read_table(pa.BufferReader(blob))
    else:
        table = feather.read_table(io.BytesIO(blob))
    arrays = {name: column_array(table[name]) for name in table.column_names}
    return len(arrays)


def cpu() -> float:
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    table = synthetic_shard(args.rows)
    formats = writers()
    write_s: dict[str, list[float]] = {name: [] for name in formats}
    read_s: dict[str, list[float]] = {name: [] for name in formats}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for name, write in formats.items():
                path = Path(folder) / ("s.parquet" if name.startswith("parquet") else "s.arrow")
                started = cpu()
                write(table, path)
                write_s[name].append(cpu() - started)
                sizes[name] = path.stat().st_size
                started = cpu()
                read_back(path)
                read_s[name].append(cpu() - started)
                path.unlink()
    today = "parquet lz4 (today)"
    base_write, base_read = statistics.median(write_s[today]), statistics.median(read_s[today])
    lines = [
        f"## Table shard formats: write, size, read ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`.venv/bin/python benchmarks/shard_formats.py --rows {args.rows} --rounds "
        f"{args.rounds}`: one {args.rows:,}-row shard (8 float32 columns, 3 text columns, a "
        f"target), CPU seconds, median of {args.rounds} alternating rounds, 2 cores, 1-minute "
        f"load average {os.getloadavg()[0]:.1f}. Read = bytes to NumPy arrays, as training reads.",
        "",
        "| format | write s | size MB | read s | write × today | read × today |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in formats:
        write, read = statistics.median(write_s[name]), statistics.median(read_s[name])
        lines.append(
            f"| {name} | {write:.3f} | {sizes[name] / 1e6:.1f} | {read:.3f} | "
            f"{write / base_write:.2f} | {read / base_read:.2f} |"
        )
    print("\n".join(lines))
    if args.write_results:
        from results import write_section

        write_section("\n".join(lines) + "\n", "## Table shard formats")


if __name__ == "__main__":
    main()
