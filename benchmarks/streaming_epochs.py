"""Benchmark: a streamed epoch's time and CPU against an in-memory one, epoch by epoch.

`dltrain train` of benchmarks/streaming.py's recipe (the 1M-row mixed table, a [64, 32] MLP,
batch 512) for ``--epochs`` epochs, `train.input: stream` and `memory` alternating A/B, each
run in a fresh process. Every epoch's wall time (history.csv's ``epoch_seconds``) and the
process's CPU seconds over the same span (all threads: the reader thread and TensorFlow's
pools included) are read from inside the run, so the reading and converting a streamed epoch
does are counted in its epoch, and the in-memory path's reading before its first epoch is not.
CPU seconds are the steadier figure on a shared machine; the 1-minute load average at each
run's start is given.

    .venv/bin/python benchmarks/streaming_epochs.py --rows 1000000 --epochs 3 --pairs 3

Needs the table benchmarks/streaming.py prepares (it runs `dltrain prepare` when missing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streaming import WORK, child, generate, latest_run, prepare_once, write_recipe  # noqa: E402

# The CLI in a fresh interpreter, with the process's CPU seconds recorded at each epoch's
# start and end by the callback that times the epoch (EpochStats).
CLI = """
import json, sys, time
from dltrain.training import callbacks
from dltrain.cli import app
spans = []
class Timed(callbacks.EpochStats):
    def on_epoch_begin(self, epoch, logs=None):
        self._cpu = time.process_time()
        super().on_epoch_begin(epoch, logs)
    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        spans.append(time.process_time() - self._cpu)
callbacks.EpochStats = Timed
import dltrain.training.watchers as watchers
watchers.EpochStats = Timed
try:
    app(sys.argv[1:], prog_name="dltrain")
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps({"epoch_cpu_seconds": spans, "cpu_seconds": time.process_time()}))
"""


def train_once(folder: Path, source: Path, mode: str, batch: int, epochs: int) -> dict[str, object]:
    """``epochs`` epochs of ``dltrain train`` in a fresh process: each epoch's wall and CPU."""
    recipe = write_recipe(folder, source, mode, batch)
    recipe.write_text(recipe.read_text().replace("epochs: 1\n", f"epochs: {epochs}\n"))
    measured = child(CLI, "train", cwd=folder)
    run = latest_run(folder)
    rows = (run / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("epoch_seconds")
    measured["epoch_seconds"] = [round(float(r.split(",")[column]), 2) for r in rows[1:]]
    spans: list[float] = measured["epoch_cpu_seconds"]  # type: ignore[assignment]
    measured["epoch_cpu_seconds"] = [round(s, 2) for s in spans]
    measured["input"] = json.loads((run / "run.json").read_text())["input"]["path"]
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    source = generate(args.rows, WORK / f"mixed-{args.rows}.csv")
    folder = WORK / f"rows-{args.rows}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data" / "bench" / "manifest.json").is_file():
        prepare_once(folder, source, args.batch_size)
    results: dict[str, list[dict[str, object]]] = {"stream": [], "memory": []}
    for pair in range(args.pairs):
        for mode in ("stream", "memory"):
            result = train_once(folder, source, mode, args.batch_size, args.epochs)
            results[mode].append(result)
            print(json.dumps({"pair": pair + 1, "mode": mode, **result}), flush=True)
    for key in ("epoch_seconds", "epoch_cpu_seconds"):
        for span, pick in (("first", slice(0, 1)), ("later", slice(1, None))):
            means = {
                mode: statistics.mean(v for r in runs for v in r[key][pick])  # type: ignore[index]
                for mode, runs in results.items()
                if any(r[key][pick] for r in runs)  # type: ignore[index]
            }
            if len(means) == 2:
                ratio = means["stream"] / means["memory"]
                print(json.dumps({"summary": key, "epochs": span, **means, "ratio": ratio}))


if __name__ == "__main__":
    main()
