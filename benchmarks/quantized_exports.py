"""Float vs dynamic-range vs full-integer TFLite exports of a trained run: size, accuracy and speed.

Exports the recipe's latest run three ways with the real CLI (`dltrain export --format tflite
[--quantize dynamic|int8] --json`), which checks each on the validation split; then scores the
Keras model and each .tflite file once on the test split in the LiteRT interpreter and times
their inference (256 images a call, and one at a time).

    cd WORKDIR && python benchmarks/quantized_exports.py --recipe recipes/mnist_demo.yaml \
        [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")
MODES = ("float", "dynamic", "int8")


def export(recipe: str, mode: str) -> dict[str, object]:
    """One export through the CLI; its --json entry."""
    flags = [] if mode == "float" else ["--quantize", mode]
    done = subprocess.run(
        [sys.executable, "-m", "dltrain", "export", "-r", recipe, "-f", "tflite", *flags, "--json"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"export {mode} failed ({done.returncode}): {done.stderr[-2000:]}")
    entry = json.loads(done.stdout)["exports"][0]
    assert isinstance(entry, dict)
    return entry


def score(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, float, float]:
    """Test accuracy, ms per image at 256 a call, ms for one image alone (median of 50)."""
    started = time.perf_counter()
    outputs = np.concatenate([predict(x[i : i + 256]) for i in range(0, len(x), 256)])
    batched = (time.perf_counter() - started) / len(x) * 1e3
    singles = []
    for i in range(50):
        started = time.perf_counter()
        predict(x[i : i + 1])
        singles.append((time.perf_counter() - started) * 1e3)
    accuracy = float(np.mean(outputs.argmax(axis=1) == y))
    return accuracy, batched, float(np.median(singles))


def interpreter(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One LiteRT interpreter for the file, called through its serving signature (it resizes
    the input to each batch), so that the timings are inference, not loading."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    (name,) = runner.get_input_details()

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(next(iter(runner(**{name: batch}).values())))

    return predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    entries = {mode: export(args.recipe, mode) for mode in MODES}

    from dltrain.evaluation.examples import prepared_dataset
    from dltrain.evaluation.run_model import open_run

    run_dir = Path(str(entries["float"]["path"])).parent.parent
    run = open_run(run_dir)
    x, y = prepared_dataset(run).load_split("test")
    model = run.load_keras()
    rows = []
    keras_scores = score(model.predict_on_batch, x, y)
    keras_file = (run_dir / "model.keras").stat().st_size
    rows.append(("Keras float32 (.keras: with optimizer state)", keras_file, None, keras_scores))
    for mode, entry in entries.items():
        path = Path(str(entry["path"]))
        scores = score(interpreter(path), x, y)
        rows.append((f"TFLite {mode}", path.stat().st_size, entry.get("quantization"), scores))
    float_bytes = rows[1][1]
    lines = [
        f"## Quantised TFLite exports of {run.recipe_name} "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Run `{run_dir.name}`; measured with `python benchmarks/quantized_exports.py --recipe "
        f"{args.recipe}` after `dltrain prepare` and `dltrain train` of that recipe, on "
        f"{os.cpu_count()} CPU core(s) shared with other work. Validation columns come from "
        f"`dltrain export --format tflite [--quantize MODE] --json` (the check that refuses a "
        f"drop beyond `--max-metric-drop`); test accuracy and speed are measured once here on "
        f"the {len(y):,}-image test split, in the LiteRT interpreter for the TFLite files.",
        "",
        "| model | size | vs float TFLite | validation accuracy (float → this) | test accuracy "
        "| ms/image at 256 | ms for 1 image |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, size, quantization, (accuracy, batched, single) in rows:
        validation = "-"
        if isinstance(quantization, dict):
            metric = quantization["metric"]
            validation = f"{metric['float']:.4f} → {metric['quantized']:.4f}"
        lines.append(
            f"| {name} | {size / 1e3:,.1f} KB | {size / float_bytes:.0%} | {validation} | "
            f"{accuracy:.4f} | {batched:.3f} | {single:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_results:
        RESULTS.write_text(RESULTS.read_text().rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
