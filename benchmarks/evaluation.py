"""Evaluate / predict / export on Fashion-MNIST: how long each takes, and whether the bootstrap's
shortcut gives the same intervals as recomputing every metric with scikit-learn.

How it measures:
  1. Prepare Fashion-MNIST with `recipes/fashion_mnist_cnn.yaml` and train it for --epochs
     (untimed; reused when benchmarks/work/evaluation/ already holds a finished run).
  2. `dltrain evaluate` as a user runs it, a fresh process each: plain, with `--bootstrap 1000`,
     and with `--format markdown --no-plots` (the CI path); wall time of the whole command.
  3. In-process, on that run's 10,000 test predictions: dltrain's bootstrap (resample counts as
     weights, one O(n) pass per resample) against the textbook loop (draw indices, recompute each
     metric with scikit-learn), on the same resamples, so the intervals must agree exactly.
  4. `dltrain predict` on the 10k test images as an .npz and on 2,000 of them as PNG files.
  5. `dltrain export` in each format: time, size, and the largest difference from Keras.

    .venv/bin/python benchmarks/evaluation.py                   # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/evaluation.py --write-results   # also update RESULTS.md

Run it on a quiet machine: anything else using the CPUs shows up in the timings.
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

import numpy as np
from results import write_section

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work" / "evaluation"  # git-ignored
RECIPE = REPO / "recipes" / "fashion_mnist_cnn.yaml"
SECTION_TITLE = "## Evaluate, predict, export on Fashion-MNIST (time and bootstrap agreement)"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}
RESAMPLES = 1000


def dltrain(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run one dltrain command in the work folder; its wall time and result."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dltrain", *args],
        cwd=WORK,
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dltrain {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done


def trained_run(epochs: int) -> Path:
    runs = WORK / "runs" / "fashion_mnist_cnn"
    finished = sorted(p for p in runs.glob("*") if (p / "model.keras").is_file())
    if finished:
        return finished[-1]
    WORK.mkdir(parents=True, exist_ok=True)
    dltrain("prepare", "--recipe", str(RECIPE))
    _, done = dltrain("train", "--recipe", str(RECIPE), "--epochs", str(epochs), "--json")
    return Path(json.loads(done.stdout)["run"])


def sklearn_bootstrap(
    y: np.ndarray, probabilities: np.ndarray, draws: list[np.ndarray]
) -> dict[str, list[float]]:
    """The textbook loop: index the resample, recompute each metric with scikit-learn."""
    from sklearn import metrics as sk

    labels = list(range(probabilities.shape[1]))
    out: dict[str, list[float]] = {"accuracy": [], "f1_macro": [], "log_loss": [], "roc_auc": []}
    for rows in draws:
        t, p = y[rows], probabilities[rows]
        pred = p.argmax(axis=1)
        out["accuracy"].append(sk.accuracy_score(t, pred))
        out["f1_macro"].append(
            sk.f1_score(t, pred, average="macro", labels=labels, zero_division=0)
        )
        out["log_loss"].append(sk.log_loss(t, np.clip(p, 1e-7, 1 - 1e-7), labels=labels))
        out["roc_auc"].append(sk.roc_auc_score(t, p, multi_class="ovr", labels=labels))
    return out


def bootstrap_comparison(run: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from dltrain.data.store import open_store
    from dltrain.evaluation.metrics import ClassificationScorer
    from dltrain.evaluation.predict import predict_batches
    from dltrain.evaluation.run_model import open_run

    opened = open_run(run)
    assert opened.data_folder is not None
    x, y = open_store(opened.data_folder).load_split("test")
    probabilities = predict_batches(opened.load_keras(), x, 512)
    scorer = ClassificationScorer(y, probabilities, opened.classes)
    rng = np.random.default_rng(0)
    n = len(y)
    draws = [rng.integers(0, n, n) for _ in range(RESAMPLES)]

    started = time.perf_counter()
    ours: dict[str, list[float]] = {}
    for rows in draws:
        counts = np.bincount(rows, minlength=n).astype(np.float64)
        for name, value in scorer.headline(counts).items():
            if value is not None:
                ours.setdefault(name, []).append(value)
    ours_seconds = time.perf_counter() - started

    started = time.perf_counter()
    textbook = sklearn_bootstrap(y, probabilities, draws)
    textbook_seconds = time.perf_counter() - started

    agreement = {}
    for name, values in textbook.items():
        mine = np.percentile(ours[name], [2.5, 97.5])
        theirs = np.percentile(values, [2.5, 97.5])
        agreement[name] = {
            "ours": mine.tolist(),
            "sklearn": theirs.tolist(),
            "max_abs_diff_per_resample": float(np.max(np.abs(np.subtract(ours[name], values)))),
        }
    return {
        "examples": n,
        "classes": len(opened.classes),
        "resamples": RESAMPLES,
        "metrics_ours": len(ours),
        "seconds_ours": round(ours_seconds, 2),
        "seconds_sklearn_4_metrics": round(textbook_seconds, 2),
        "agreement": agreement,
    }


def write_inputs(run: Path) -> tuple[Path, Path]:
    from PIL import Image

    from dltrain.data.store import open_store
    from dltrain.evaluation.run_model import open_run

    opened = open_run(run)
    assert opened.data_folder is not None
    x, _ = open_store(opened.data_folder).load_split("test")
    npz = WORK / "test_images.npz"
    np.savez(npz, x=x[..., 0], image_id=np.arange(len(x)))
    folder = WORK / "png"
    if not folder.is_dir():
        folder.mkdir()
        for i in range(2000):
            Image.fromarray(x[i, ..., 0]).save(folder / f"{i:05d}.png")
    return npz, folder


def measure(epochs: int) -> dict[str, Any]:
    run = trained_run(epochs)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": ".venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": f"{os.cpu_count()} CPU(s), {platform.machine()}",
        "load_before": os.getloadavg()[0],
        "run": str(run),
    }
    timings: dict[str, float] = {}
    timings["evaluate"], done = dltrain("evaluate", "--run", str(run), "--json")
    document = json.loads(done.stdout)
    result["metrics"] = {
        k: document["metrics"][k]
        for k in ("accuracy", "f1_macro", "roc_auc", "log_loss", "expected_calibration_error")
    }
    timings["evaluate --bootstrap 1000"], done = dltrain(
        "evaluate", "--run", str(run), "--bootstrap", str(RESAMPLES), "--json", "--no-plots"
    )
    result["intervals"] = json.loads(done.stdout)["intervals"]
    timings["evaluate --no-plots --format markdown"], _ = dltrain(
        "evaluate", "--run", str(run), "--no-plots", "--format", "markdown"
    )
    result["bootstrap"] = bootstrap_comparison(run)
    npz, folder = write_inputs(run)
    for label, source, output in (
        ("predict 10,000 (.npz)", npz, "npz.csv"),
        ("predict 2,000 (PNG folder)", folder, "png.csv"),
    ):
        timings[label], done = dltrain(
            "predict", "--run", str(run), "-i", str(source), "-o", str(WORK / output), "--json"
        )
        result.setdefault("predict", {})[label] = json.loads(done.stdout)["seconds"]
    exports = {}
    for fmt in ("saved_model", "tflite", "onnx"):
        timings[f"export {fmt}"], done = dltrain("export", "--run", str(run), "-f", fmt, "--json")
        exports[fmt] = json.loads(done.stdout)["exports"][0]
    result["exports"] = exports
    result["timings"] = {k: round(v, 2) for k, v in timings.items()}
    result["load_after"] = os.getloadavg()[0]
    return result


def markdown(result: dict[str, Any]) -> str:
    b = result["bootstrap"]
    m = result["metrics"]
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {result['when']} with `{result['command']}` (from the repository root).",
        "",
        f"- **Machine:** {result['machine']}; load average (1 min) {result['load_before']:.2f} "
        f"before, {result['load_after']:.2f} after (other engineers' work shared the CPUs).",
        f"- **Model:** `recipes/fashion_mnist_cnn.yaml` trained 1 epoch; on the 10,000-image test "
        f"set accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f}, ROC-AUC "
        f"{m['roc_auc']:.4f}, log loss {m['log_loss']:.4f}, ECE "
        f"{m['expected_calibration_error']:.4f}.",
        "",
        "| command (a fresh process each; TensorFlow start-up included) | wall s |",
        "| --- | ---: |",
    ]
    lines += [f"| `dltrain {k}` | {v:.1f} |" for k, v in result["timings"].items()]
    lines += [
        "",
        f"**Bootstrap** ({b['resamples']:,} resamples of {b['examples']:,} examples, "
        f"{b['classes']} classes, the same index draws for both): dltrain's counts-as-weights "
        f"pass computed all {b['metrics_ours']} headline metrics in {b['seconds_ours']:.1f} s; "
        f"indexing each resample and recomputing just accuracy, macro F1, log loss and "
        f"one-vs-rest ROC-AUC with scikit-learn took {b['seconds_sklearn_4_metrics']:.1f} s "
        f"({b['seconds_sklearn_4_metrics'] / max(b['seconds_ours'], 1e-9):.0f}x). The "
        f"intervals agree:",
        "",
        "| metric | dltrain 95% interval | scikit-learn loop | largest difference per resample |",
        "| --- | --- | --- | ---: |",
    ]
    for name, a in b["agreement"].items():
        lines.append(
            f"| {name} | {a['ours'][0]:.4f} – {a['ours'][1]:.4f} | "
            f"{a['sklearn'][0]:.4f} – {a['sklearn'][1]:.4f} | "
            f"{a['max_abs_diff_per_resample']:.1e} |"
        )
    lines += [
        "",
        "**Predict** (reading, predicting and writing CSV; model loading excluded): "
        + "; ".join(f"{k}: {v:.1f} s" for k, v in result["predict"].items())
        + ".",
        "",
        "| export | size | checked on | max abs diff vs Keras | same class |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for fmt, e in result["exports"].items():
        lines.append(
            f"| {fmt} | {e['bytes'] / 1e6:.2f} MB | {e['checked_examples']} inputs | "
            f"{e['max_abs_diff']:.1e} | {e['agreement']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (untimed)")
    parser.add_argument("--write-results", action="store_true", help="update RESULTS.md")
    args = parser.parse_args()
    result = measure(args.epochs)
    (WORK / "evaluation-last.json").write_text(json.dumps(result, indent=2))
    section = markdown(result)
    print(section)
    if args.write_results:
        write_section(section, SECTION_TITLE)


if __name__ == "__main__":
    main()
