"""LR finder benchmark: does `dltrain find-lr` suggest a rate that trains well?

On the bundled MNIST demo (recipes/mnist_demo.yaml: 8k training images, CNN with batch norm,
Adam, batch 64, cosine schedule), it runs the range test once, then trains the recipe for a few
epochs at each rate the test reports (its suggestion, minimum ÷ 10; the steepest descent; the
minimum itself) and at the recipe's hand-picked rate, and evaluates every run on the test split.

    .venv/bin/python benchmarks/lr_finder_demo.py                  # 3 epochs per training
    .venv/bin/python benchmarks/lr_finder_demo.py --write-results  # update benchmarks/RESULTS.md

Everything goes to benchmarks/work/lr_finder/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from results import RESULTS, write_section

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work" / "lr_finder"
RECIPE = REPO / "recipes" / "mnist_demo.yaml"
SECTION_TITLE = "## LR finder on the MNIST demo: does the suggested rate train well?"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}


def dltrain(*args: str) -> dict[str, Any]:
    """Run one dltrain command in the work folder; return its --json document."""
    command = [str(Path(sys.executable).with_name("dltrain")), *args, "--recipe", str(RECIPE)]
    done = subprocess.run(command, cwd=WORK, env=CHILD_ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr}")
    document: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    return document


def train_and_evaluate(rate: float, epochs: int) -> dict[str, Any]:
    started = time.perf_counter()
    trained = dltrain(
        "train",
        "--json",
        "--lr",
        f"{rate:.3g}",
        "--epochs",
        str(epochs),
        "--set",
        "train.early_stopping.enabled=false",
    )
    evaluated = dltrain("evaluate", "--json", "--run", trained["run"])
    return {
        "rate": float(f"{rate:.3g}"),
        "val_accuracy": trained["final"]["val_accuracy"],
        "val_loss": trained["final"]["val_loss"],
        "test_accuracy": evaluated["metrics"]["accuracy"],
        "seconds": time.perf_counter() - started,
    }


def report(
    found: dict[str, Any], finder_seconds: float, rows: list[dict[str, Any]], epochs: int
) -> str:
    recipe = yaml.safe_load(RECIPE.read_text())
    load = os.getloadavg()[0]
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with "
        f"`.venv/bin/python benchmarks/lr_finder_demo.py --epochs {epochs} --write-results`.",
        "",
        f"- **Machine:** {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}; "
        f"load average (1 min) {load:.2f} at the end (other work shared the CPUs).",
        "- **Data:** the bundled MNIST sample (`demo/mnist`, 10k images split 8k/1k/1k by "
        "`recipes/mnist_demo.yaml`).",
        f"- **Range test:** `dltrain find-lr --recipe recipes/mnist_demo.yaml` "
        f"({recipe['train']['optimizer']['name']}, batch {recipe['train']['batch_size']}, "
        f"1e-7 → 10 over at most 200 steps): {found['steps_run']} steps, stopped "
        f"'{found['stopped']}', {finder_seconds:.0f} s. Minimum of the smoothed loss at "
        f"{found['minimum_learning_rate']:.2g}; steepest descent at "
        f"{found['steepest_learning_rate']:.2g}; **suggestion {found['suggestion']:.2g}** "
        f"(minimum ÷ 10).",
        f"- **Then:** the recipe trained {epochs} epochs (cosine schedule over them, early "
        f"stopping off) at each rate, evaluated on the 1k test split.",
        "",
        "| rate | what | val accuracy | val loss | test accuracy | seconds |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['rate']:.3g} | {row['what']} | {row['val_accuracy']:.4f} | "
            f"{row['val_loss']:.4f} | {row['test_accuracy']:.4f} | {row['seconds']:.0f} |"
        )
    return "\n".join([*lines, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training (default 3)")
    parser.add_argument("--write-results", action="store_true", help="update RESULTS.md")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"dltrain prepare (untimed) in {WORK} …", file=sys.stderr)
    dltrain("prepare")
    print("dltrain find-lr …", file=sys.stderr)
    started = time.perf_counter()
    found = dltrain("find-lr", "--json")
    finder_seconds = time.perf_counter() - started
    recipe_rate = float(yaml.safe_load(RECIPE.read_text())["train"]["optimizer"]["learning_rate"])
    candidates = [
        (found["steepest_learning_rate"], "steepest descent"),
        (found["suggestion"], "**suggestion** (minimum ÷ 10)"),
        (recipe_rate, "the recipe's own"),
        (found["minimum_learning_rate"], "the minimum"),
    ]
    rows = []
    for rate, what in sorted(candidates):
        print(f"train {args.epochs} epochs at {rate:.3g} ({what}) …", file=sys.stderr)
        rows.append({**train_and_evaluate(rate, args.epochs), "what": what})
    section = report(found, finder_seconds, rows, args.epochs)
    print(section)
    if args.write_results:
        write_section(section, SECTION_TITLE)
        print(f"Wrote the section into {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
