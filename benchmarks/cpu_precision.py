"""Training speed of one recipe's network on this CPU in float32, bfloat16 and float16.

Why: `train.mixed_precision: on` computes in bfloat16 on a CPU (dltrain/training/device.py),
because CPUs have no fast float16 while recent ones multiply bfloat16 natively. This measures
that choice: the recipe's own model, built by dltrain from its prepared data's manifest, trained
on batches of random raw pixels under each Keras dtype policy, each policy in a fresh process,
the three alternated ``--repeats`` times so a machine that slows down hits all alike.

    .venv/bin/dltrain prepare --recipe recipes/fashion_mnist_cnn.yaml   # the manifest (once)
    .venv/bin/python benchmarks/cpu_precision.py --recipe recipes/fashion_mnist_cnn.yaml

Prints the median milliseconds per training step of each policy and its speed against float32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
WARMUP_STEPS = 3


def time_steps(recipe_path: Path, policy: str, steps: int) -> float:
    """Seconds per training step of the recipe's model under ``policy`` (in this process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from dltrain.backend import keras
    from dltrain.data.store import open_store
    from dltrain.models import build_model
    from dltrain.models.io import ModelIO
    from dltrain.recipe.load import load_recipe
    from dltrain.runs import data_dir
    from dltrain.training.compile import compile_parts

    keras.mixed_precision.set_global_policy(policy)
    recipe = load_recipe(recipe_path).recipe
    dataset = open_store(data_dir(Path.cwd(), recipe.name))  # where `dltrain prepare` put it
    manifest = dataset.manifest
    model = build_model(recipe.model, ModelIO(manifest))
    parts = compile_parts(recipe.train, manifest.task, manifest, steps_per_epoch=steps)
    model.compile(optimizer=parts.optimizer, loss=parts.loss, jit_compile=False)
    features = manifest.features
    batch = recipe.train.batch_size
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, *features.shape), dtype=features.dtype)
    y = rng.integers(0, manifest.target.num_classes, batch)
    for _ in range(WARMUP_STEPS):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - started) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=Path("recipes/fashion_mnist_cnn.yaml"))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per process")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=POLICIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_steps(args.recipe, args.child, args.steps)))
        return 0
    seconds: dict[str, list[float]] = {p: [] for p in POLICIES}
    for _ in range(args.repeats):
        for policy in POLICIES:
            command = [sys.executable, __file__, "--recipe", str(args.recipe)]
            command += ["--steps", str(args.steps), "--child", policy]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            seconds[policy].append(float(out.strip().splitlines()[-1]))
    base = statistics.median(seconds["float32"])
    print(f"{args.recipe}: median ms per training step over {args.repeats} processes")
    for policy in POLICIES:
        median = statistics.median(seconds[policy])
        print(f"  {policy:15} {1000 * median:8.1f} ms   {base / median:5.2f}x float32's speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
