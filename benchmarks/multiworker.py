"""Multi-worker training on a real table: does our loop match ``fit``, and what does it cost?

Contenders train the same recipe (``recipes/adult_income.yaml``, a few epochs) from the shell,
alternated round by round on this machine:

- ``fit``: no ``TF_CONFIG``, Keras's ``model.fit`` (the default strategy);
- ``loop, 1 worker``: ``TF_CONFIG`` naming one worker: MultiWorkerMirroredStrategy and
  dltrain's own loop in one process, to price the loop and the strategy against ``fit``;
- ``2 workers``: two processes on localhost ports, each computing half of every batch, with
  the loop's default batches per call into TensorFlow; variants with 1, 16 or 128 batches per
  call (``steps per call``), and with one TensorFlow thread per worker
  (``TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1``, ``1 thread each``);
- ``one worker's compute``: the floor under two workers on this machine, with no strategy and
  no communication. ``fit`` on one thread at batch 128 runs twice the batches of an epoch at
  256, so half its epoch time is the compute one worker does in an epoch; ``1 process`` runs it
  alone, ``2 processes at once`` runs two such fits side by side (two copies of the prepared
  data), as two workers share the two cores.

On a 2-core machine two workers share the cores that ``fit`` has to itself. Reported per
contender: the median epoch time (epochs after the first, which traces the step), its ratio to
``fit``'s in the same round (the median of the rounds, and each round's), validation loss and
accuracy after the last epoch, and whether the two workers ended with the same weights.

Run: .venv/bin/python benchmarks/multiworker.py [--epochs 3] [--rounds 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "multiworker"
COPY = REPO / "benchmarks" / "work" / "multiworker-copy"  # a second fit running beside the first
DLTRAIN = [sys.executable, "-m", "dltrain"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tf_config(hosts: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})


def setup(epochs: int) -> None:
    """A copy of the adult_income recipe with absolute paths, prepared once."""
    WORK.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load((REPO / "recipes" / "adult_income.yaml").read_text())
    source = (REPO / "recipes" / recipe["data"]["source"]).resolve()
    recipe["data"]["source"] = str(source)
    recipe["train"]["epochs"] = epochs
    recipe["train"]["tensorboard"] = False
    (WORK / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    subprocess.run([*DLTRAIN, "prepare"], cwd=WORK, check=True, capture_output=True)
    shutil.copytree(WORK, COPY, dirs_exist_ok=True)


@dataclass(frozen=True)
class Contender:
    """How one contender trains: workers (0: plain fit), loop settings, environment; or
    ``copies`` plain fits side by side, ``epoch_share`` of whose epoch time is reported."""

    num_workers: int
    steps_per_execution: int | None = None  # None: the loop's default
    env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    copies: int = 1
    epoch_share: float = 1.0

    def command(self) -> list[str]:
        if self.steps_per_execution is None:
            return [*DLTRAIN, "train", "--json", *self.extra_args]
        code = (
            "import sys; sys.argv = ['dltrain', 'train', '--json']; "
            "import dltrain.training.multiworker as loop; "
            f"loop.STEPS_PER_EXECUTION = {self.steps_per_execution}; "
            "from dltrain.cli import main; main()"
        )
        return [sys.executable, "-c", code]


HALF_BATCH = ("--set", "train.batch_size=128")
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
CONTENDERS = {
    "fit": Contender(0),
    "loop, 1 worker": Contender(1),
    "2 workers, 1 step per call": Contender(2, steps_per_execution=1),
    "2 workers, 16 steps per call": Contender(2, steps_per_execution=16),
    "2 workers": Contender(2),
    "2 workers, 1 thread each": Contender(2, env=ONE_THREAD),
    "2 workers, 128 steps per call, 1 thread each": Contender(
        2, steps_per_execution=128, env=ONE_THREAD
    ),
    "one worker's compute, 1 process": Contender(
        0, env=ONE_THREAD, extra_args=HALF_BATCH, epoch_share=0.5
    ),
    "one worker's compute, 2 processes at once": Contender(
        0, env=ONE_THREAD, extra_args=HALF_BATCH, copies=2, epoch_share=0.5
    ),
}


def train(contender: Contender) -> dict[str, Any]:
    """Train once as ``contender`` says; the chief's results."""
    num_workers = contender.num_workers
    hosts = [f"127.0.0.1:{free_port()}" for _ in range(max(num_workers, 1))]
    base = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, **contender.env}
    if num_workers == 0:
        places = [(WORK, base), (COPY, base)][: contender.copies]
    else:
        places = [(WORK, {**base, "TF_CONFIG": tf_config(hosts, i)}) for i in range(num_workers)]
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            contender.command(),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cwd, env in places
    ]
    try:
        outputs = [worker.communicate(timeout=1800) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    wall = time.perf_counter() - started
    for worker, (_, err) in zip(workers, outputs, strict=True):
        if worker.returncode != 0:
            raise SystemExit(f"dltrain train failed ({worker.returncode}):\n{err}")
    docs = [json.loads(out) for out, _ in outputs]
    run = Path(docs[0]["run"])
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    digests = {(doc.get("workers") or {}).get("weights_sha256") for doc in docs}
    return {
        "wall_seconds": wall,
        "epoch_seconds": contender.epoch_share
        * statistics.median(float(r["epoch_seconds"]) for r in rows[1:] or rows),
        "val_loss": float(rows[-1]["val_loss"]),
        "val_accuracy": float(rows[-1]["val_accuracy"]),
        "same_weights": len(digests) == 1 if num_workers > 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--only", nargs="+", choices=list(CONTENDERS)[1:], help="contenders beside fit"
    )
    args = parser.parse_args()
    setup(args.epochs)
    names = ["fit", *(args.only or list(CONTENDERS)[1:])]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    loads = []
    for round_ in range(args.rounds):
        for name in names:
            loads.append(os.getloadavg()[0])
            results[name].append(train(CONTENDERS[name]))
            print(f"round {round_ + 1} {name}: {results[name][-1]}", file=sys.stderr)
    print(
        f"adult_income, {args.epochs} epochs, batch 256, {args.rounds} rounds alternated; "
        f"load average (1 min) at each start {min(loads):.1f}–{max(loads):.1f}\n"
    )
    print(
        "| contender | epoch s (median) | × fit (median of rounds) | × fit each round "
        "| val loss | val accuracy | same weights |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        rows = results[name]
        epoch = statistics.median(r["epoch_seconds"] for r in rows)
        ratios = [
            r["epoch_seconds"] / f["epoch_seconds"]
            for r, f in zip(rows, results["fit"], strict=True)
        ]
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        losses = ", ".join(f"{r['val_loss']:.4f}" for r in rows)
        accuracies = ", ".join(f"{r['val_accuracy']:.4f}" for r in rows)
        workers = CONTENDERS[name].num_workers
        same = "—" if workers < 2 else ", ".join(str(r["same_weights"]).lower() for r in rows)
        print(
            f"| {name} | {epoch:.2f} | {statistics.median(ratios):.2f} | {each} | {losses} "
            f"| {accuracies} | {same} |"
        )


if __name__ == "__main__":
    main()
