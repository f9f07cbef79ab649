"""Fashion-MNIST: training wall time until the test accuracy first reaches a target (0.91).

The goal (issue #4): dltrain's recipe gets to 91 % test accuracy on 2 CPU cores in at most half
the training time of the seed's hand-written Keras CNN script (benchmarks/reference_keras_cnn.py).

How it measures, the same way for both contenders:
  1. `dltrain prepare` the recipe once, untimed.
  2. Alternate fresh processes, reference then dltrain, --repeats times. After every epoch each
     contender scores the 10k test set; that evaluation runs after the epoch's clock stops, so it
     is not counted, and training stops at the first epoch that reaches the target.
  3. Time to target = the sum of the epoch wall times (on_epoch_begin → on_epoch_end, validation
     and the first epoch's graph tracing included) up to and including that epoch.

dltrain's side runs exactly what `dltrain train --recipe R` runs (dltrain.training.fit.train,
with its progress display, checkpoints, history and TensorBoard files), plus one extra callback
that scores the test split: the prepared dataset's own, i.e. the source's 10k test images.

    .venv/bin/python benchmarks/fashion_mnist_time_to_accuracy.py                 # 1 pair
    .venv/bin/python benchmarks/fashion_mnist_time_to_accuracy.py --only dltrain  # try a recipe
    .venv/bin/python benchmarks/fashion_mnist_time_to_accuracy.py --write-results
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist as fm  # noqa: E402  (the per-epoch benchmark: shared helpers)
from results import write_section  # noqa: E402

DEFAULT_RECIPE = fm.REPO / "recipes" / "fashion_mnist_fast.yaml"
TARGET = 0.91
GOAL_RATIO = 0.5
SECTION_TITLE = "## Fashion-MNIST: training time to 91% test accuracy, dltrain vs the reference"


# --- the dltrain side: a child process running dltrain's own training code -------------------


def dltrain_child(recipe: Path, sets: list[str], target: float, out: Path) -> None:
    """Train the recipe as `dltrain train` does, scoring the test split after every epoch."""
    from dltrain.backend import keras
    from dltrain.cli.common import load
    from dltrain.console import make_console
    from dltrain.training.fit import train
    from dltrain.training.plan import open_prepared

    loaded = load(str(recipe), sets)
    workdir = Path.cwd()
    test_x, test_y = open_prepared(loaded, workdir).load_split("test")

    class TestAccuracy(keras.callbacks.Callback):
        """Test accuracy after each epoch, after EpochStats stopped the epoch's clock."""

        def __init__(self) -> None:
            super().__init__()
            self.accuracies: list[float] = []
            self.seconds: list[float] = []

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            started = time.perf_counter()
            probabilities = self.model.predict(test_x, batch_size=512, verbose=0)
            self.accuracies.append(float((probabilities.argmax(axis=-1) == test_y).mean()))
            self.seconds.append(time.perf_counter() - started)
            if self.accuracies[-1] >= target:
                self.model.stop_training = True

    scorer = TestAccuracy()
    result = train(loaded, workdir, make_console(), extra_callbacks=[scorer])
    with (result.run_dir / "history.csv").open(newline="", encoding="utf-8") as handle:
        epoch_seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    info = json.loads((result.run_dir / "run.json").read_text(encoding="utf-8"))
    out.write_text(
        json.dumps(
            {
                "epoch_seconds": epoch_seconds,
                "test_accuracy_per_epoch": scorer.accuracies,
                "test_scoring_seconds": scorer.seconds,
                "run": str(result.run_dir),
                "device": info.get("device"),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


# --- one run of each contender ----------------------------------------------------------------


def time_to_target(epoch_seconds: list[float], accuracies: list[float], target: float) -> dict:
    """Cumulative epoch time to the first epoch at or above ``target`` (None if never)."""
    hit = next((i for i, a in enumerate(accuracies) if a >= target), None)
    return {
        "epoch_seconds": epoch_seconds,
        "accuracies": accuracies,
        "epoch": None if hit is None else hit + 1,
        "seconds": None if hit is None else sum(epoch_seconds[: hit + 1]),
        "best": max(accuracies) if accuracies else None,
    }


def run_reference(args: argparse.Namespace, index: int) -> dict:
    out = fm.WORK / f"tta-reference-{index}.json"
    out.unlink(missing_ok=True)
    command = [
        sys.executable, str(fm.REFERENCE_SCRIPT), "--data", str(args.data),
        "--epochs", str(args.max_reference_epochs), "--seed", str(fm.SEED),
        "--eval-every-epoch", "--stop-at-accuracy", str(args.target), "--json-out", str(out),
    ]  # fmt: skip
    fm.run_checked(command, "The reference script")
    result = json.loads(out.read_text(encoding="utf-8"))
    return time_to_target(result["epoch_seconds"], result["test_accuracy_per_epoch"], args.target)


def run_dltrain(args: argparse.Namespace, index: int) -> dict:
    out = fm.WORK / f"tta-dltrain-{index}.json"
    out.unlink(missing_ok=True)
    command = [
        sys.executable, __file__, "--child", "--recipe", str(args.recipe),
        "--target", str(args.target), "--json-out", str(out),
        *[a for s in args.set for a in ("--set", s)],
    ]  # fmt: skip
    fm.run_checked(command, "dltrain training")
    result = json.loads(out.read_text(encoding="utf-8"))
    timing = time_to_target(result["epoch_seconds"], result["test_accuracy_per_epoch"], args.target)
    return {**timing, "device": result.get("device"), "run": result["run"]}


# --- report -----------------------------------------------------------------------------------


def cell(value: float | None, spec: str) -> str:
    return "not reached" if value is None else format(value, spec)


def ratio_verdict(runs: dict[str, list[dict]], target: float) -> str:
    """dltrain's median time to target over the reference's, or a bound on it.

    A reference run that never reaches the target within its epochs gives a lower bound on its
    time (all the epochs it trained), hence an upper bound on the ratio.
    """
    reference, dltrain = runs.get("reference"), runs.get("dltrain")
    if not reference or not dltrain:
        return "No ratio: only one contender was run."
    if any(r["seconds"] is None for r in dltrain):
        return f"No ratio: dltrain did not reach {target:.2f}. Goal NOT met."
    ours = statistics.median(r["seconds"] for r in dltrain)
    reached = all(r["seconds"] is not None for r in reference)
    theirs = statistics.median(
        r["seconds"] if r["seconds"] is not None else sum(r["epoch_seconds"]) for r in reference
    )
    ratio = ours / theirs
    met = "met" if ratio <= GOAL_RATIO else "NOT met"
    if reached:
        return (
            f"**dltrain / reference = {ratio:.3f}** (median training seconds to {target:.2f} "
            f"test accuracy; goal <= {GOAL_RATIO}: {met})."
        )
    return (
        f"**dltrain / reference < {ratio:.3f}**: the reference had not reached {target:.2f} "
        f"after all its {len(reference[0]['epoch_seconds'])} epochs ({theirs:.0f} s), so its "
        f"time to target is longer than that (goal <= {GOAL_RATIO}: {met})."
    )


def report(runs: dict[str, list[dict]], args: argparse.Namespace, info: dict[str, str]) -> str:
    rows = [
        "| contender | run | epoch reaching the target | training s to target | median s/epoch "
        "| best test accuracy seen | test accuracy per epoch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    labels = {"reference": "reference Keras script", "dltrain": f"dltrain `{args.recipe_shown}`"}
    for name, contender in runs.items():
        for i, r in enumerate(contender, start=1):
            per_epoch = " ".join(f"{a:.4f}" for a in r["accuracies"])
            rows.append(
                f"| {labels[name]} | {i} | {cell(r['epoch'], 'd')} | {cell(r['seconds'], '.0f')} "
                f"| {statistics.median(r['epoch_seconds']):.1f} | {r['best']:.4f} | {per_epoch} |"
            )
    verdict = ratio_verdict(runs, args.target)
    return "\n".join(
        [
            SECTION_TITLE,
            "",
            f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with "
            f"`{args.command}` (from the repository root).",
            "",
            f"- **Machine:** {info['cpus']} CPU(s), {info['cpu']}; device as dltrain recorded "
            f"it: {info.get('device', 'unknown')}; TensorFlow {info['tensorflow']}, Keras "
            f"{info['keras']}. Load average (1 min) {args.load_before:.2f} before, "
            f"{args.load_after:.2f} after (above {info['cpus']}: other work shared the CPUs).",
            "- **Data:** Fashion-MNIST, 54,000 images trained on, 6,000 for validation, the "
            "source's 10,000-image test set scored after every epoch (outside the epoch's clock).",
            "- **Reference:** benchmarks/reference_keras_cnn.py, the seed's script (Conv32 → pool "
            "→ Conv64 → pool → Dense64 → Dropout 0.5, Adam 0.001 constant, batch 128), up to "
            f"{args.max_reference_epochs} epochs.",
            f"- **dltrain:** `dltrain train --recipe {args.recipe_shown}`'s own training code "
            f"{'with ' + ', '.join('--set ' + s for s in args.set) + ' ' if args.set else ''}"
            "(progress display, checkpoints, history, TensorBoard all on).",
            "- **Time to target:** the sum of epoch wall times (validation and the first epoch's "
            f"graph tracing included) up to the first epoch scoring >= {args.target:.2f} on the "
            f"test set. {args.repeats} pair(s) of fresh processes, reference first.",
            "",
            *rows,
            "",
            verdict,
            "",
        ]
    )


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="dltrain's recipe")
    parser.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE")
    parser.add_argument("--target", type=float, default=TARGET, help="test accuracy (0.91)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (default 1)")
    parser.add_argument("--max-reference-epochs", type=int, default=30)
    parser.add_argument("--only", choices=["reference", "dltrain"], default=None)
    parser.add_argument("--data", type=Path, default=fm.DEFAULT_DATA, help="for the reference")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from the last run's benchmarks/work/time_to_accuracy-last.json",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.recipe = args.recipe.resolve()
    try:
        args.recipe_shown = str(args.recipe.relative_to(fm.REPO))
    except ValueError:
        args.recipe_shown = str(args.recipe)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        dltrain_child(args.recipe, args.set, args.target, args.json_out)
        return 0
    args.load_before = os.getloadavg()[0]
    fm.WORK.mkdir(parents=True, exist_ok=True)
    info = fm.machine()
    contenders = [args.only] if args.only else ["reference", "dltrain"]
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    last = fm.WORK / "time_to_accuracy-last.json"
    args.command = fm.shown_command(__file__)
    if args.report_only:
        saved = json.loads(last.read_text(encoding="utf-8"))
        runs, args.command, args.load_before = saved["runs"], saved["command"], saved["load"][0]
        args.load_after = saved["load"][1]
        contenders = []  # nothing to run
    try:
        if "dltrain" in contenders:  # (a report-only call runs nothing)
            print(f"dltrain prepare --recipe {args.recipe_shown} (untimed) …", file=sys.stderr)
            prepare = [fm.dltrain_command(), "prepare", "--recipe", str(args.recipe)]
            fm.run_checked(prepare + [a for s in args.set for a in ("--set", s)], "prepare")
        for i in range(args.repeats):
            for name in contenders:
                print(f"[{i + 1}/{args.repeats}] {name} …", end=" ", file=sys.stderr, flush=True)
                run = run_reference(args, i) if name == "reference" else run_dltrain(args, i)
                runs[name].append(run)
                print(
                    f"epoch {run['epoch']}, {cell(run['seconds'], '.0f')} s; accuracies "
                    + " ".join(f"{a:.4f}" for a in run["accuracies"]),
                    file=sys.stderr,
                )
    except fm.BenchmarkError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    if not args.report_only:
        args.load_after = os.getloadavg()[0]
        saved = {"runs": runs, "command": args.command, "load": [args.load_before, args.load_after]}
        last.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    if "dltrain" in runs:
        info["device"] = str(runs["dltrain"][-1].get("device") or "unknown")
    section = report(runs, args, info)
    print(section)
    if args.write_results:
        write_section(section, SECTION_TITLE)
        print(f"Wrote the section into {fm.RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
