"""Tuning benchmark: does Hyperband pruning halve the wall time of a search without losing the best?

Two `dltrain tune` searches over the same space, with the same sampler, seed and number of trials,
on the same documented subset of Fashion-MNIST: one with `--pruner none`, one with
`--pruner hyperband`. The default sampler is random search, so that both searches try exactly the
same configurations in the same order: the time saved is pruning's alone, and the accuracy gap
says whether pruning stopped the eventual winner. (With TPE the two searches see different results
and part ways after the start-up trials; `--sampler tpe` measures that too.)

The goals (issue 6): the pruned search takes at most 0.5x the unpruned one's wall time, and its
best validation accuracy is within 0.5 percentage points. Also reported: trials per hour on this
machine.

How it measures:
  1. Writes the subset as an .npz (arrays x_train/y_train/x_test/y_test) into benchmarks/work/tune/:
     a stratified random --train-size images of the 60k training set (seed 0) and 2,000 of the
     test set. dltrain splits the training images 80/20 into train and validation.
  2. `dltrain prepare` once (untimed); both searches reuse the prepared data.
  3. Times each `dltrain tune` process from start to exit (the searches run one after the other;
     --order says which first), reading its --json document for the best value and trial states.

    .venv/bin/python benchmarks/tune_fashion_mnist.py                       # 16 trials, 9 epochs
    .venv/bin/python benchmarks/tune_fashion_mnist.py --trials 3 --epochs 2 --train-size 2000
    .venv/bin/python benchmarks/tune_fashion_mnist.py --write-results       # update RESULTS.md
    # one trial's training with full run outputs vs a trial's outputs (alternated pairs):
    .venv/bin/python benchmarks/tune_fashion_mnist.py --trial-overhead 4 --epochs 3

Run it on a quiet machine: anything else using the CPUs shows up in the timings.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from results import write_section

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work" / "tune"  # git-ignored
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fashion-mnist"
RECIPE_NAME = "tune_bench_fashion"
SECTION_TITLE = "## Fashion-MNIST: tune with and without Hyperband pruning"
GOAL_TIME_RATIO = 0.5
GOAL_ACCURACY_GAP = 0.005  # 0.5 percentage points
CHILD_ENV = {**os.environ, "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

SPACE: dict[str, Any] = {
    "train.optimizer.learning_rate": {"log_uniform": [1.0e-4, 3.0e-2]},
    "train.batch_size": {"choice": [64, 128, 256]},
    "model.dropout": {"uniform": [0.0, 0.6]},
    "model.filters": {"choice": [[16, 32], [32, 64]]},
}


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as a NumPy array: big-endian header, then unsigned bytes."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_subset(data: Path, train_size: int, out: Path) -> dict[str, Any]:
    """A stratified random subset of Fashion-MNIST as an .npz dltrain reads."""
    x_train = read_idx(data / "train-images-idx3-ubyte.gz")
    y_train = read_idx(data / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(data / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(data / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(0)
    per_class = train_size // 10
    picked = np.concatenate(
        [rng.choice(np.flatnonzero(y_train == c), per_class, replace=False) for c in range(10)]
    )
    rng.shuffle(picked)
    test_picked = rng.choice(len(y_test), 2000, replace=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x_train=x_train[picked],
        y_train=y_train[picked],
        x_test=x_test[test_picked],
        y_test=y_test[test_picked],
    )
    return {"train_images": int(len(picked)), "test_images": 2000, "per_class": per_class}


def write_recipe(source: Path, epochs: int, trials: int, sampler: str, folder: Path = WORK) -> Path:
    recipe = {
        "name": RECIPE_NAME,
        "description": "Benchmark: TPE search with and without Hyperband pruning.",
        "seed": 42,
        "data": {"source": str(source), "split": {"validation": 0.2}, "scaling": "unit"},
        "model": {"family": "cnn", "filters": [32, 64], "dense": [64], "dropout": 0.3},
        "train": {
            "epochs": epochs,
            "batch_size": 128,
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            # Off, so that only the pruner decides when a trial stops early.
            "early_stopping": {"enabled": False},
        },
        "tune": {
            "objective": "val_accuracy",
            "num_trials": trials,
            "sampler": sampler,
            "space": SPACE,
        },
    }
    path = folder / f"{RECIPE_NAME}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def dltrain(*args: str, what: str, cwd: Path = WORK) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dltrain", *args]
    done = subprocess.run(command, cwd=cwd, env=CHILD_ENV, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-30:])
        raise BenchmarkError(
            f"{what} failed with exit code {done.returncode}.\ncommand: {shlex.join(command)}\n"
            f"--- stderr (last 30 lines) ---\n{tail}"
        )
    return done


def run_search(recipe: Path, pruner: str) -> dict[str, Any]:
    """One timed `dltrain tune` process; its JSON document plus the wall time."""
    study = f"bench-{pruner}"
    started = time.perf_counter()
    done = dltrain(
        "tune",
        "--recipe",
        str(recipe),
        "--pruner",
        pruner,
        "--study-name",
        study,
        "--json",
        what=f"dltrain tune --pruner {pruner}",
    )
    seconds = time.perf_counter() - started
    document = json.loads(done.stdout)
    states = document["counts"]
    epochs = [t["epochs_run"] or 0 for t in document["trials"]]
    return {
        "pruner": pruner,
        "seconds": seconds,
        "best": document["best"]["value"] if document["best"] else None,
        "best_trial": document["best"]["trial"] if document["best"] else None,
        "best_params": document["best"]["params"] if document["best"] else None,
        "states": states,
        "epochs_trained": int(sum(epochs)),
        "trials": len(document["trials"]),
        "per_trial": [
            {
                "params": t["params"],
                "seconds": t["seconds"],
                "epochs_run": t["epochs_run"],
                "epoch_seconds": epoch_seconds(t["run_dir"]),
            }
            for t in document["trials"]
        ],
    }


def epoch_seconds(run_dir: str | None) -> list[float]:
    if not run_dir:
        return []
    with (Path(run_dir) / "history.csv").open(newline="", encoding="utf-8") as handle:
        return [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]


def replay(none: dict[str, Any], band: dict[str, Any]) -> float | None:
    """The pruned search's cost at the unpruned search's speed: a load-independent estimate.

    With random sampling both searches try the same configurations in the same order, so each
    pruned trial costs its unpruned twin's fixed overhead plus its first k epochs. Other work on
    the machine then slows both sides alike, which the raw wall times cannot promise.
    """
    total = 0.0
    for full, cut in zip(none["per_trial"], band["per_trial"], strict=True):
        if full["params"] != cut["params"] or not full["epoch_seconds"]:
            return None  # different configurations (TPE): no twin to compare with
        overhead = full["seconds"] - sum(full["epoch_seconds"])
        total += overhead + sum(full["epoch_seconds"][: cut["epochs_run"] or 0])
    unpruned = sum(t["seconds"] for t in none["per_trial"])
    return total / unpruned if unpruned else None


def overheads(search: dict[str, Any]) -> dict[str, float] | None:
    """Median per-trial costs that pruning cannot remove, from the tuner's view of each trial.

    ``outside``: a trial's seconds (asked to told, as the study records them) minus its epochs'
    seconds: the hand-over to a warm process, loading data, building and saving the model,
    recording the result. ``tracing``: the first epoch minus the median later epoch, i.e. graph
    tracing and warm-up inside the first epoch (trials with at least 3 epochs).
    """
    outside = [
        t["seconds"] - sum(t["epoch_seconds"]) for t in search["per_trial"] if t["epoch_seconds"]
    ]
    tracing = [
        t["epoch_seconds"][0] - statistics.median(t["epoch_seconds"][1:])
        for t in search["per_trial"]
        if len(t["epoch_seconds"]) >= 3
    ]
    if not outside:
        return None
    return {
        "outside": statistics.median(outside),
        "tracing": statistics.median(tracing) if tracing else float("nan"),
    }


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def render(
    args: argparse.Namespace,
    subset: dict[str, Any],
    runs: dict[str, dict[str, Any]],
    loads: tuple[str, str],
) -> str:
    none, band = runs["none"], runs["hyperband"]
    ratio = band["seconds"] / none["seconds"]
    gap = (none["best"] or 0.0) - (band["best"] or 0.0)
    time_met = "met" if ratio <= GOAL_TIME_RATIO else "NOT met"
    acc_met = "met" if gap <= GOAL_ACCURACY_GAP else "NOT met"
    command = (
        "python benchmarks/tune_fashion_mnist.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in (
                ("trials", args.trials),
                ("sampler", args.sampler),
                ("epochs", args.epochs),
                ("train_size", args.train_size),
                ("order", args.order),
            )
        )
        + " --write-results"
    )
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/{command}` "
        f"(from the repository root).",
        "",
        f"- **Machine:** {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; load average (1 min) {loads[0]} before, "
        f"{loads[1]} after. Other work shared the machine; wall times are as measured.",
        f"- **Data:** a stratified random {subset['train_images']:,} of Fashion-MNIST's 60,000 "
        f"training images ({subset['per_class']} per class, NumPy seed 0), split 80/20 into "
        f"train and validation by dltrain (seed 42); the objective is the best epoch's "
        f"val_accuracy.",
        f"- **Search:** {args.sampler} sampler (seed 42), {args.trials} trials, up to "
        f"{args.epochs} epochs each, "
        f"early stopping off; one trial at a time. Space: learning rate log-uniform "
        f"[1e-4, 3e-2], batch size {{64, 128, 256}}, dropout [0, 0.6], filters {{[16, 32], "
        f"[32, 64]}}. Hyperband: min 1 epoch, max {args.epochs}, reduction factor 3.",
        "",
        "| search | wall s | trials/hour | epochs trained | complete / pruned / failed "
        "| best val_accuracy (trial) |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for key, label in (("none", "no pruning"), ("hyperband", "Hyperband pruning")):
        r = runs[key]
        s = r["states"]
        lines.append(
            f"| {label} | {r['seconds']:.0f} | {r['trials'] * 3600 / r['seconds']:.1f} | "
            f"{r['epochs_trained']} | {s.get('complete', 0)} / {s.get('pruned', 0)} / "
            f"{s.get('fail', 0)} | {r['best']:.4f} ({r['best_trial']}) |"
        )
    same_load = replay(none, band)
    if same_load is not None:
        lines += [
            "",
            f"Same configurations in both searches (random sampling), so the pruned search can "
            f"also be costed at the unpruned search's speed, trial by trial (each pruned trial's "
            f"twin: its fixed overhead plus its first k epochs): **{same_load:.3f}** of the "
            f"unpruned time. This figure is immune to other work slowing one search more than "
            f"the other. Epochs trained, pruned / unpruned: "
            f"{band['epochs_trained'] / none['epochs_trained']:.3f}.",
        ]
    fixed = {key: overheads(runs[key]) for key in ("none", "hyperband")}
    if fixed["none"] is not None and fixed["hyperband"] is not None:
        lines += [
            "",
            f"Per-trial fixed cost (medians): outside the epochs "
            f"{fixed['none']['outside']:.2f} s unpruned / {fixed['hyperband']['outside']:.2f} s "
            f"pruned (hand-over, data, model build and save, recording); first-epoch excess "
            f"over later epochs (graph tracing, with the next trial's process starting beside it) "
            f"{fixed['none']['tracing']:.2f} s.",
        ]
    lines += [
        "",
        f"**Pruned / unpruned wall time = {ratio:.3f}** (goal <= {GOAL_TIME_RATIO}: {time_met}); "
        f"**best val_accuracy gap = {gap * 100:+.2f} points** (unpruned minus pruned; goal <= "
        f"{GOAL_ACCURACY_GAP * 100:.1f}: {acc_met}).",
        "",
    ]
    return "\n".join(lines)


# One `dltrain train` in a fresh process, as a trial runs it: full outputs or a trial's.
TRAIN_ONCE = """
import csv, json, sys, time
from pathlib import Path
from dltrain.console import make_console
from dltrain.recipe import load_recipe
from dltrain.training import fit
recipe, kind = Path(sys.argv[1]), sys.argv[2]
loaded = load_recipe(recipe, [])
cpu, wall = time.process_time(), time.perf_counter()
result = fit.train(loaded, recipe.parent, make_console(), trial=kind == "trial")
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
with (result.run_dir / "history.csv").open(newline="") as handle:
    epochs = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
print(json.dumps({"wall": wall, "cpu": cpu, "epochs": epochs}))
"""


def measure_trial_overhead(args: argparse.Namespace) -> str:
    """A trial's training with full run outputs vs a trial's outputs, in alternated pairs.

    Each measurement is ``train()`` in a fresh process (TensorFlow imported before the clock
    starts, as in a warm trial process), so the difference is what the trial outputs save:
    per-epoch checkpoints, TensorBoard, the learning-curve plot and the model summary.
    """
    work = BENCH_DIR / "work" / "tune-overhead"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_subset(args.data, args.train_size, work / "fashion_subset.npz")
    recipe = write_recipe(work / "fashion_subset.npz", args.epochs, 1, "random", folder=work)
    dltrain("prepare", "--recipe", str(recipe), what="dltrain prepare", cwd=work)
    samples: dict[str, list[dict[str, Any]]] = {"full": [], "trial": []}
    loads = [load_average()]
    for pair in range(args.trial_overhead):
        kinds = ["full", "trial"] if pair % 2 == 0 else ["trial", "full"]
        for kind in kinds:
            done = subprocess.run(
                [sys.executable, "-c", TRAIN_ONCE, str(recipe), kind],
                cwd=work,
                env=CHILD_ENV,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise BenchmarkError(f"training ({kind} outputs) failed:\n{done.stderr[-2000:]}")
            samples[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(kind, samples[kind][-1], file=sys.stderr, flush=True)
        loads.append(load_average())

    def median(kind: str, value: Any) -> float:
        return statistics.median(value(s) for s in samples[kind])

    def outside(s: dict[str, Any]) -> float:
        return float(s["wall"] - sum(s["epochs"]))

    rows = [
        ("train() wall s", lambda s: s["wall"]),
        ("outside the epochs, wall s", outside),
        ("CPU s (both cores)", lambda s: s["cpu"]),
    ]
    lines = [
        f"Trial outputs vs full run outputs: `.venv/bin/python benchmarks/tune_fashion_mnist.py "
        f"--trial-overhead {args.trial_overhead} --epochs {args.epochs} --train-size "
        f"{args.train_size}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.trial_overhead} "
        f"alternated pairs, each `train()` in a fresh process; 1-minute load average "
        f"{', '.join(loads)}):",
        "",
        "| medians | full outputs | trial outputs | saved |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, value in rows:
        full, trial = median("full", value), median("trial", value)
        lines.append(f"| {label} | {full:.2f} | {trial:.2f} | {full - trial:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--sampler", choices=["random", "tpe", "qmc"], default="random")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--order", choices=["none-first", "hyperband-first"], default="none-first")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument(
        "--trial-overhead",
        type=int,
        metavar="PAIRS",
        help="instead of the searches: time one trial's training with full run outputs vs a "
        "trial's, PAIRS alternated pairs (prints a table)",
    )
    args = parser.parse_args()
    if args.trial_overhead:
        try:
            print(measure_trial_overhead(args))
        except BenchmarkError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        if WORK.exists():
            shutil.rmtree(WORK)  # fresh studies and runs: a resumed study would not be a measure
        WORK.mkdir(parents=True)
        subset = write_subset(args.data, args.train_size, WORK / "fashion_subset.npz")
        recipe = write_recipe(WORK / "fashion_subset.npz", args.epochs, args.trials, args.sampler)
        dltrain("prepare", "--recipe", str(recipe), what="dltrain prepare")
        order = ["none", "hyperband"] if args.order == "none-first" else ["hyperband", "none"]
        before = load_average()
        runs = {}
        for pruner in order:
            print(f"searching with --pruner {pruner} …", file=sys.stderr, flush=True)
            runs[pruner] = run_search(recipe, pruner)
            shown = {k: v for k, v in runs[pruner].items() if k != "per_trial"}
            print(json.dumps(shown), file=sys.stderr, flush=True)
        section = render(args, subset, runs, (before, load_average()))
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(section)
    (WORK / "last.json").write_text(json.dumps(runs, indent=2), encoding="utf-8")
    if args.write_results:
        write_section(section, SECTION_TITLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
