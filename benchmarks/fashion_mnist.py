"""Fashion-MNIST benchmark: is dltrain as fast per epoch as the hand-written Keras script?

Both contenders train the same network (Conv32 → pool → Conv64 → pool → Dense64 → Dropout 0.5 →
softmax, 'valid' padding) with Adam 0.001, batch 128, on 54k examples with 6k held out for
validation, then report the accuracy on the 10k test set. The goal is dltrain's median seconds
per epoch within 3% of the reference's (ratio <= 1.03).

How it measures:
  1. Write a benchmark recipe into benchmarks/work/ and run `dltrain prepare` once (untimed).
  2. Alternate runs, reference then dltrain, --repeats times, each a fresh process, so that a
     machine getting slower or faster over time hits both sides alike.
  3. Per contender: the median epoch time over all runs, leaving out each run's first epoch
     (graph tracing), which is reported on its own.

    .venv/bin/python benchmarks/fashion_mnist.py                    # 3 epochs, 2 pairs
    .venv/bin/python benchmarks/fashion_mnist.py --epochs 1 --repeats 1   # smoke test
    .venv/bin/python benchmarks/fashion_mnist.py --write-results    # update benchmarks/RESULTS.md

Run it on a quiet machine: anything else using the CPUs shows up in the timings.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from results import RESULTS, write_section

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work"  # git-ignored: recipe, prepared data, runs, per-run JSON
REFERENCE_SCRIPT = BENCH_DIR / "reference_keras_cnn.py"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fashion-mnist"

RECIPE_NAME = "bench_fashion_seed_cnn"
SEED = 42
GOAL_RATIO = 1.03
SECTION_TITLE = "## Fashion-MNIST: dltrain vs the reference Keras script (per-epoch time)"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}


class BenchmarkError(Exception):
    """A step of the benchmark failed; the message says which and why."""


# --- one run of each contender ----------------------------------------------------------------


@dataclass
class Run:
    """What one training process reported."""

    contender: str
    epoch_seconds: list[float]
    test_accuracy: float
    process_seconds: float  # the training process from start to exit
    detail: dict[str, Any] = field(default_factory=dict)


def run_checked(command: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the work folder; on failure raise with the tail of its output."""
    try:
        return subprocess.run(
            command, cwd=WORK, env=CHILD_ENV, capture_output=True, text=True, check=True
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or "").strip().splitlines()[-30:])
        out = "\n".join((exc.stdout or "").strip().splitlines()[-10:])
        raise BenchmarkError(
            f"{what} failed with exit code {exc.returncode}.\n"
            f"command: {shlex.join(command)}\n(cwd {WORK})\n"
            f"--- stderr (last 30 lines) ---\n{tail or '(empty)'}"
            + (f"\n--- stdout (last 10 lines) ---\n{out}" if out else "")
        ) from None
    except FileNotFoundError as exc:
        raise BenchmarkError(f"{what}: cannot start {command[0]} ({exc}).") from None


def dltrain_command() -> str:
    """The dltrain console script next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("dltrain")
    return str(beside) if beside.is_file() else "dltrain"


def write_recipe(data: Path, epochs: int) -> Path:
    """The reference script's network, optimizer and split, as a dltrain recipe."""
    recipe = {
        "name": RECIPE_NAME,
        "description": "Benchmark: the reference Keras script's CNN, trained by dltrain.",
        "seed": SEED,
        "data": {"source": str(data), "split": {"validation": 0.1}, "scaling": "unit"},
        "model": {
            "family": "cnn",
            "filters": [32, 64],
            "kernel_size": 3,
            "padding": "valid",
            "dense": [64],
            "dropout": 0.5,
            "batch_norm": False,
            "block_dropout": 0.0,
        },
        "train": {
            "epochs": epochs,
            "batch_size": 128,
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "lr_schedule": {"name": "constant"},
            "early_stopping": {"enabled": False},
        },
    }
    path = WORK / f"{RECIPE_NAME}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def run_reference(data: Path, epochs: int, index: int) -> Run:
    """One process of the hand-written script; it writes its result as JSON."""
    out = WORK / f"reference-{index}.json"
    out.unlink(missing_ok=True)
    command = [
        sys.executable, str(REFERENCE_SCRIPT), "--data", str(data), "--epochs", str(epochs),
        "--seed", str(SEED), "--json-out", str(out),
    ]  # fmt: skip
    started = time.perf_counter()
    run_checked(command, "The reference script")
    seconds = time.perf_counter() - started
    result = json.loads(out.read_text(encoding="utf-8"))
    return Run("reference", result["epoch_seconds"], result["test_accuracy"], seconds, result)


def run_dltrain(recipe: Path, epochs: int) -> Run:
    """One `dltrain train` process, then `dltrain evaluate` of the run it made (untimed)."""
    runs_root = WORK / "runs" / RECIPE_NAME
    before = set(runs_root.iterdir()) if runs_root.is_dir() else set()
    command = [dltrain_command(), "train", "--recipe", str(recipe), "--epochs", str(epochs)]
    started = time.perf_counter()
    run_checked(command, "dltrain train")
    seconds = time.perf_counter() - started

    new = sorted(p for p in runs_root.iterdir() if p.is_dir() and p not in before)
    if not new:
        raise BenchmarkError(f"dltrain train succeeded but made no run folder in {runs_root}.")
    run_dir = new[-1]
    with (run_dir / "history.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "epoch_seconds" not in rows[0]:
        raise BenchmarkError(f"{run_dir / 'history.csv'} has no epoch_seconds column or no rows.")
    epoch_seconds = [float(row["epoch_seconds"]) for row in rows]

    evaluate = [dltrain_command(), "evaluate", "--recipe", str(recipe), "--run", str(run_dir)]
    stdout = run_checked([*evaluate, "--json"], "dltrain evaluate").stdout
    try:
        accuracy = float(json.loads(stdout)["metrics"]["accuracy"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchmarkError(
            f"dltrain evaluate --json printed no usable metrics.accuracy ({exc}). "
            f"stdout began: {stdout[:300]!r}"
        ) from None
    device = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("device")
    return Run("dltrain", epoch_seconds, accuracy, seconds, {"run": str(run_dir), "device": device})


# --- summary ----------------------------------------------------------------------------------


@dataclass
class Summary:
    """One contender over all its runs."""

    name: str
    runs: int
    steady: list[float]  # every epoch but each run's first
    first: list[float]  # each run's first epoch
    accuracies: list[float]
    process_seconds: list[float]

    @property
    def median(self) -> float | None:
        return statistics.median(self.steady) if self.steady else None


def summarize(name: str, runs: list[Run]) -> Summary:
    return Summary(
        name=name,
        runs=len(runs),
        steady=[s for r in runs for s in r.epoch_seconds[1:]],
        first=[r.epoch_seconds[0] for r in runs],
        accuracies=[r.test_accuracy for r in runs],
        process_seconds=[r.process_seconds for r in runs],
    )


def machine() -> dict[str, str]:
    """CPUs, CPU model and library versions, without importing TensorFlow here."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or platform.machine()

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpus": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "python": platform.python_version(),
    }


def shown_command(script: str = __file__) -> str:
    """The command as typed from the repository root (``script``: the benchmark's file)."""
    python = Path(sys.executable)
    try:
        python_text = str(python.relative_to(REPO))
    except ValueError:
        python_text = str(python)
    shown = Path(script).resolve().relative_to(REPO)
    return shlex.join([python_text, str(shown), *sys.argv[1:]])


def seconds_text(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "n/a"


def spread_text(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "n/a"


def accuracy_text(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ({min(values):.4f}–{max(values):.4f})"


def report(
    reference: Summary, dltrain: Summary, args: argparse.Namespace, info: dict[str, str]
) -> str:
    """The Markdown section: setup, the table, and the verdict."""
    rows = [
        "| contender | median s/epoch (epochs 2+) | range | epochs timed | first epoch s "
        f"(median) | test accuracy after {args.epochs} epoch(s) | process s (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, s in (("reference Keras script", reference), ("dltrain", dltrain)):
        rows.append(
            f"| {label} | {seconds_text(s.steady)} | {spread_text(s.steady)} | {len(s.steady)} "
            f"| {seconds_text(s.first)} | {accuracy_text(s.accuracies)} "
            f"| {seconds_text(s.process_seconds)} |"
        )

    if reference.median and dltrain.median:
        ratio = dltrain.median / reference.median
        met = "met" if ratio <= GOAL_RATIO else "NOT met"
        verdict = (
            f"**dltrain / reference = {ratio:.3f}** (median s/epoch, first epochs excluded; "
            f"goal <= {GOAL_RATIO}: {met})."
        )
    else:
        verdict = (
            "No ratio: with --epochs 1 every epoch is a first (tracing) epoch, which the median "
            "leaves out. Use --epochs 2 or more."
        )
    first_ratio = statistics.median(dltrain.first) / statistics.median(reference.first)

    load = os.getloadavg()[0]
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with `{shown_command()}` "
        f"(from the repository root).",
        "",
        f"- **Machine:** {info['cpus']} CPU(s), {info['cpu']}; training device as dltrain "
        f"recorded it: {info.get('device', 'unknown')}; TensorFlow "
        f"{info['tensorflow']}, Keras {info['keras']}, Python {info['python']}. Load average "
        f"(1 min) {args.load_before:.2f} before, {load:.2f} after.",
        f"- **Data:** Fashion-MNIST from `{args.data}`: 60,000 training images, of which "
        f"54,000 are trained on and 6,000 held out for validation (the reference: Keras "
        f"`validation_split=0.1`, the last 6,000; dltrain: a stratified random 10%), and the "
        f"10,000-image test set.",
        "- **Both:** Conv2D(32, 3×3, relu) → MaxPool(2) → Conv2D(64, 3×3, relu) → MaxPool(2) → "
        "Flatten → Dense(64, relu) → Dropout(0.5) → Dense(10, softmax), 'valid' padding; Adam "
        f"0.001, batch 128, seed {SEED}, {args.epochs} epoch(s). Epoch time is wall time from "
        "`on_epoch_begin` to `on_epoch_end` (validation included), as dltrain's `EpochStats` "
        "records it.",
        f"- **Runs:** {args.repeats} pair(s), alternating reference then dltrain, each a fresh "
        "process. The median is over every epoch but each run's first (graph tracing), which is "
        f"shown on its own (first-epoch ratio dltrain / reference: {first_ratio:.3f}). "
        "'process s' is the training process from start to exit (imports, data loading, "
        "training; for the reference also its test evaluation, which dltrain does in a separate, "
        "untimed `dltrain evaluate`).",
        "",
        *rows,
        "",
        verdict,
        "",
    ]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="pairs of runs, reference then dltrain (default 2)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Fashion-MNIST IDX folder")
    parser.add_argument(
        "--write-results", action="store_true", help=f"update the section in {RESULTS.name}"
    )
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be at least 1")
    args.data = args.data.resolve()
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder (expected Fashion-MNIST IDX .gz files)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = os.getloadavg()[0]
    WORK.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(
        f"{info['cpus']} CPU(s) {info['cpu']}, TensorFlow {info['tensorflow']}; "
        f"load average {args.load_before:.2f}. Work folder: {WORK}",
        file=sys.stderr,
    )

    try:
        recipe = write_recipe(args.data, args.epochs)
        print(f"dltrain prepare --recipe {recipe.name} (untimed) …", file=sys.stderr)
        run_checked([dltrain_command(), "prepare", "--recipe", str(recipe)], "dltrain prepare")

        runs: dict[str, list[Run]] = {"reference": [], "dltrain": []}
        total = 2 * args.repeats
        for i in range(args.repeats):
            for j, name in enumerate(("reference", "dltrain")):
                print(f"[{2 * i + j + 1}/{total}] {name} …", end=" ", file=sys.stderr, flush=True)
                if name == "reference":
                    run = run_reference(args.data, args.epochs, i)
                else:
                    run = run_dltrain(recipe, args.epochs)
                runs[name].append(run)
                epochs = " ".join(f"{s:.1f}" for s in run.epoch_seconds)
                print(
                    f"epochs {epochs} s, test accuracy {run.test_accuracy:.4f}, "
                    f"process {run.process_seconds:.0f} s",
                    file=sys.stderr,
                )
    except BenchmarkError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1

    raw = {name: [asdict(run) for run in contender] for name, contender in runs.items()}
    (WORK / "fashion_mnist-last.json").write_text(json.dumps(raw, indent=2) + "\n", "utf-8")
    summaries = {name: summarize(name, contender) for name, contender in runs.items()}
    info["device"] = str(runs["dltrain"][-1].detail.get("device") or "unknown")
    section = report(summaries["reference"], summaries["dltrain"], args, info)
    print(section)
    if args.write_results:
        write_section(section, SECTION_TITLE)
        print(f"Wrote the section into {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
