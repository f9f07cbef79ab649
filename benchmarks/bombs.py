"""Small inputs that once exhausted the machine: each is now refused, and this measures how fast
and in how much memory (issue #12, item 6).

Each bomb is fed to the real CLI in a fresh process (`python -m dltrain …`), and the process's
wall time, exit code and peak resident memory (ru_maxrss of the child) are recorded.

    .venv/bin/python benchmarks/bombs.py [--write-results]
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

RECIPE = "name: bomb\ndata:\n  source: {source}\n"


def alias_bomb(folder: Path) -> list[str]:
    text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    (folder / "r.yaml").write_text(text)
    return ["train", "--recipe", "r.yaml", "--dry-run"]


def deep_recipe(folder: Path) -> list[str]:
    (folder / "r.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    return ["train", "--recipe", "r.yaml", "--dry-run"]


def huge_label(folder: Path) -> list[str]:
    x = np.zeros((4, 3), np.float32)
    np.savez(folder / "d.npz", x=x, y=np.array([0, 1, 2**40, 1], np.int64))
    (folder / "r.yaml").write_text(RECIPE.format(source="d.npz"))
    return ["prepare", "--recipe", "r.yaml"]


def gzip_idx_bomb(folder: Path) -> list[str]:
    (folder / "idx").mkdir()
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 10, 28, 28)
    with gzip.open(folder / "idx" / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header)
        block = bytes(1 << 20)
        for _ in range(3 * 1024):  # 3 GB of zeros behind a header announcing 10 images
            handle.write(block)
    with gzip.open(folder / "idx" / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 10) + bytes(10))
    (folder / "r.yaml").write_text(RECIPE.format(source="idx"))
    return ["prepare", "--recipe", "r.yaml"]


def png_bomb(folder: Path) -> list[str]:
    for label in ("a", "b"):
        (folder / "imgs" / label).mkdir(parents=True)
        Image.new("L", (8, 8)).save(folder / "imgs" / label / "0.png")
    path = folder / "imgs" / "a" / "bomb.png"
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 15_000, 15_000)  # IHDR: 225 million pixels announced
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    (folder / "r.yaml").write_text(RECIPE.format(source="imgs"))
    return ["prepare", "--recipe", "r.yaml"]


def huge_dense(folder: Path) -> list[str]:
    (folder / "r.yaml").write_text(
        "name: bomb\ndata:\n  source: x.npz\nmodel:\n  family: mlp\n  units: [1.0e+11]\n"
    )
    return ["train", "--recipe", "r.yaml", "--dry-run"]


BOMBS: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "YAML aliases (9 levels of 9)": ("375 B", alias_bomb),
    "YAML nested 5,000 deep": ("10 KB", deep_recipe),
    ".npz label 2^40": ("1 KB", huge_label),
    "gzip IDX: 3 GB behind a 10-image header": ("3 MB", gzip_idx_bomb),
    "PNG announcing 15000×15000": ("70 B", png_bomb),
    "MLP of 1e11 units under --dry-run": ("70 B", huge_dense),
}


def run(args: list[str], folder: Path) -> tuple[float, int, float, str]:
    """Seconds, exit code, the child's peak RSS in MB, and its last stderr line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dltrain", *args], cwd=folder, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: run the bombs smallest-first or read it
    # as "at most"; every bomb below is refused long before it could approach the others.
    last = " ".join(done.stderr.split())  # Rich wraps the paragraph: join it again
    return seconds, done.returncode, max(peak, before) / 1024, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, (size, make) in BOMBS.items():
        with tempfile.TemporaryDirectory() as folder:
            command = make(Path(folder))
            seconds, code, peak_mb, message = run(command, Path(folder))
            message = message.replace(str(Path(folder).resolve()) + "/", "").replace(
                folder + "/", ""
            )
        rows.append(
            f"| {name} | {size} | `dltrain {' '.join(command)}` | {code} | "
            f"{seconds:.1f} s | ≤ {peak_mb:.0f} MB | {message[:90]}… |"
        )
        print(rows[-1], flush=True)
    section = [
        f"## Resource bombs refused ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "`.venv/bin/python benchmarks/bombs.py`: each input through the real CLI in a fresh "
        f"process; peak memory is the child's maximum resident set (Python and its imports "
        f"included; the largest child so far, so an upper bound). 1-minute load average "
        f"{os.getloadavg()[0]:.1f} on 2 cores.",
        "",
        "| bomb | file size | command | exit | time | peak memory | message starts |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
        *rows,
    ]
    print("\n".join(section))
    if args.write_results:
        from results import write_section

        write_section("\n".join(section) + "\n", "## Resource bombs refused")


if __name__ == "__main__":
    main()
