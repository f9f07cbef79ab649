"""Benchmark: an image set larger than the memory the training process may use, streamed.

Generates class folders of JPEG images (shapes on gradient backgrounds, from a fixed seed), whose
decoded training split is larger than a cap on the process's data memory (RLIMIT_DATA, what
`prlimit --data=BYTES` sets: the kernel refuses heap and anonymous mappings beyond it, so an
allocation past it fails with MemoryError or kills the process). Then, each in a fresh process:
  1. `dltrain prepare` under the cap (time, peak RSS);
  2. `dltrain train` for one epoch of a small CNN, streamed (`--set train.input=stream`), under
     the cap: peak RSS, epoch time, validation accuracy;
  3. the same train read into memory (`--set train.input=memory`) under the same cap, which
     must fail, after which every shard must still match its checksum;
  4. with --uncapped-memory, the in-memory train without the cap, for its peak RSS.

    .venv/bin/python benchmarks/streaming_images.py                 # 48,000 160×160 images
    .venv/bin/python benchmarks/streaming_images.py --images 2000 --cap-mb 1500   # a quick try

Files go to benchmarks/work/streaming-images/ (git-ignored); the results are the "image set
under a memory cap" subsection of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "streaming-images"
CLASSES = ("circle", "square", "triangle", "cross")
PER_TASK = 500  # images one generating task writes


def _draw(
    kind: str, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fill: tuple
) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x0, y1), (x1, y1)], fill=fill)
    else:
        w = max((x1 - x0) // 4, 2)
        mx, my = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((mx - w // 2, y0, mx + w // 2, y1), fill=fill)
        draw.rectangle((x0, my - w // 2, x1, my + w // 2), fill=fill)


def _write_images(task: tuple[Path, int, int, int, int]) -> int:
    """Images ``start`` to ``start + count`` of the set (class = index mod 4), from their own
    seed, so any task order gives the same files."""
    root, size, start, count, seed = task
    rng = np.random.default_rng([seed, start])
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    # sensor-like noise drawn once per task and reused shifted: drawing it per image cost more
    # than the rest of the image
    noise = rng.normal(0, 6, (2 * size, 2 * size, 3)).astype(np.float32)
    for index in range(start, start + count):
        kind = CLASSES[index % len(CLASSES)]
        a, b = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
        t = ramp[:, None, None] if rng.random() < 0.5 else ramp[None, :, None]
        dy, dx = rng.integers(0, size, 2)
        pixels = a + (b - a) * t + noise[dy : dy + size, dx : dx + size]
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        side = int(rng.uniform(0.3, 0.7) * size)
        x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        _draw(kind, ImageDraw.Draw(image), (x0, y0, x0 + side, y0 + side), fill)
        image.save(root / kind / f"{index:06d}.jpg", quality=90)
    return count


def generate(root: Path, images: int, size: int, seed: int = 0) -> float:
    """The class folders of ``images`` JPEGs of ``size``×``size`` (kept when complete).

    Returns:
        Seconds spent (0 when they were there already).
    """
    done = root / "complete.json"
    wanted = {"images": images, "size": size, "seed": seed}
    if done.is_file() and json.loads(done.read_text()) == wanted:
        return 0.0
    started = time.perf_counter()
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for stale in (root / kind).glob("*.jpg"):
            stale.unlink()
    tasks = [
        (root, size, start, min(PER_TASK, images - start), seed)
        for start in range(0, images, PER_TASK)
    ]
    with ProcessPoolExecutor(max(1, min(2, os.cpu_count() or 1))) as pool:
        sum(pool.map(_write_images, tasks))
    done.write_text(json.dumps(wanted))
    return time.perf_counter() - started


RECIPE = """\
name: imgbench
seed: 7
data:
  source: {source}
  format: images
  image: {{size: [{size}, {size}], channels: 3}}
  split: {{validation: 0.05, test: 0.05}}
  scaling: unit
model:
  family: cnn
  filters: [8, 16]
  pool_size: 4
  dense: [32]
  dropout: 0.1
train:
  epochs: 1
  batch_size: 64
  optimizer: {{name: adam, learning_rate: 0.003}}
  tensorboard: false
"""


def run_cli(folder: Path, args: list[str], cap_bytes: int | None) -> dict[str, object]:
    """``dltrain ARGS`` in a fresh process in ``folder``, under the cap when one is given.

    Returns:
        Exit code, wall seconds, CPU seconds and the process's peak RSS (from wait4, so a
        process the kernel killed is measured too), the load average at the start, and the last
        lines of its stderr.
    """

    def limit() -> None:  # what `prlimit --data=BYTES` sets, in the child before exec
        if cap_bytes is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (cap_bytes, cap_bytes))

    load = os.getloadavg()[0]
    log = folder / f"{args[0]}-{int(time.time())}.log"
    started = time.perf_counter()
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "dltrain", *args],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(HERE.parent), "NO_COLOR": "1"},
            preexec_fn=limit,  # noqa: PLW1509 - no threads in this process
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    tail = log.read_text(errors="replace").strip().splitlines()[-6:]
    return {
        "cap_mb": round(cap_bytes / 1e6) if cap_bytes is not None else None,
        "exit_code": code,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "load_at_start": round(load, 1),
        "stderr_tail": tail if code != 0 else [],
    }


def latest_run(folder: Path) -> Path | None:
    runs = folder / "runs" / "imgbench"
    found = sorted(runs.iterdir(), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    return found[-1] if found else None


def run_summary(run: Path) -> dict[str, object]:
    """The finished run's epoch time, validation accuracy and input path."""
    lines = (run / "history.csv").read_text().splitlines()
    header, last = lines[0].split(","), lines[-1].split(",")
    info = json.loads((run / "run.json").read_text())
    return {
        "epoch_seconds": round(float(last[header.index("epoch_seconds")]), 1),
        "val_accuracy": round(float(last[header.index("val_accuracy")]), 4),
        "input": (info.get("input") or {}).get("path"),
        "status": info.get("status"),
    }


def shards_intact(data: Path) -> bool:
    """Whether every shard the manifest lists still has its recorded SHA-256."""
    manifest = json.loads((data / "manifest.json").read_text())
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            digest = hashlib.sha256((data / shard["file"]).read_bytes()).hexdigest()
            if digest != shard["sha256"]:
                return False
    return True


def split_sizes(data: Path) -> dict[str, dict[str, float]]:
    """Each split's examples, shard files, MB on disk and MB decoded."""
    manifest = json.loads((data / "manifest.json").read_text())
    pixels = int(np.prod(manifest["features"]["shape"]))
    return {
        name: {
            "examples": split["num_examples"],
            "shards": len(split["shards"]),
            "disk_mb": round(sum((data / s["file"]).stat().st_size for s in split["shards"]) / 1e6),
            "decoded_mb": round(split["num_examples"] * pixels / 1e6),
        }
        for name, split in manifest["splits"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48_000, help="images in the set")
    parser.add_argument("--size", type=int, default=160, help="their side in pixels")
    parser.add_argument("--cap-mb", type=int, default=2000, help="RLIMIT_DATA of each step, MB")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument(
        "--steps",
        nargs="+",
        default=["stream", "memory"],
        choices=["stream", "memory"],
        help="capped trains to run, in order",
    )
    parser.add_argument(
        "--uncapped-memory",
        action="store_true",
        help="also train in memory without the cap (needs ~3x the set in RAM)",
    )
    args = parser.parse_args()
    cap = args.cap_mb * 1_000_000
    source = WORK / f"images-{args.images}-{args.size}"
    folder = WORK / f"project-{args.images}-{args.size}"
    folder.mkdir(parents=True, exist_ok=True)
    seconds = generate(source, args.images, args.size)
    print(json.dumps({"generated_s": round(seconds, 1), "source": str(source)}), flush=True)
    (folder / "dltrain.yaml").write_text(RECIPE.format(source=source, size=args.size))
    data = folder / "data" / "imgbench"
    rows: list[tuple[str, dict[str, object]]] = []
    if not args.skip_prepare:
        rows.append(("prepare", run_cli(folder, ["prepare", "--force"], cap)))
        print(json.dumps({"prepare": rows[-1][1]}), flush=True)
    print(json.dumps({"splits": split_sizes(data)}), flush=True)
    trains = [(mode, cap) for mode in args.steps]
    trains += [("memory", None)] if args.uncapped_memory else []
    for mode, limit in trains:
        before = latest_run(folder)
        measured = run_cli(folder, ["train", "--set", f"train.input={mode}"], limit)
        run = latest_run(folder)
        if measured["exit_code"] == 0 and run is not None and run != before:
            measured.update(run_summary(run))
        if measured["exit_code"] != 0:
            measured["shards_intact"] = shards_intact(data)
        label = f"train {mode}" + (" (no cap)" if limit is None else "")
        rows.append((label, measured))
        print(json.dumps({label: measured}), flush=True)
    print_table(rows)


def print_table(rows: list[tuple[str, dict[str, object]]]) -> None:
    """The results as a Markdown table (stdout)."""
    print(
        "\n| step | RLIMIT_DATA MB | exit | wall s | CPU s | peak RSS MB | epoch s "
        "| val accuracy | load |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, m in rows:
        cap = f"{m['cap_mb']:,}" if m["cap_mb"] is not None else "none"
        print(
            f"| {label} | {cap} | {m['exit_code']} | {m['seconds']} | {m['cpu_seconds']} | "
            f"{m['peak_rss_mb']:,} | {m.get('epoch_seconds', '-')} | {m.get('val_accuracy', '-')} "
            f"| {m['load_at_start']} |"
        )


if __name__ == "__main__":
    main()
