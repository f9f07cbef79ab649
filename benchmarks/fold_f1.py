"""Out-of-fold F1 of binary `dltrain train --folds K` runs, and of their combinations.

`cross_validation.json` now holds each fold's F1, precision and recall at threshold 0.5 too
(written after this script); what it adds is the threshold chosen on the other folds and the
pairs of variants. It scores each fold's saved model on the rows that fold held out (rebuilt by
dltrain's own fold code, and checked against the fold's recorded held-out accuracy and size),
then reports per variant:

- F1, precision and recall of the positive class at the default threshold 0.5, mean ± sd over
  folds;
- F1 when each fold's threshold is chosen (as `evaluate --optimize-threshold f1` chooses it) on
  the other folds' out-of-fold scores, never on its own rows;
- with `--pair A B`: the same for the mean of two variants' probabilities (a model that uses
  both views, approximated without building it; the folds must be the same rows).

    PYTHONPATH=. .venv/bin/python benchmarks/fold_f1.py WORKDIR NAME [NAME ...] [--pair A B]

WORKDIR holds data/ and runs/; NAME is a recipe name whose latest run is cross-validated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Variant:
    """One cross-validated run's out-of-fold positive scores, by fold."""

    name: str
    labels: np.ndarray  # the pool's labels (1 = positive)
    scores: np.ndarray  # P(positive) of each pooled row, from the fold that held it out
    fold_of: np.ndarray  # the 1-based fold holding each row out
    recorded_loss: list[float]  # each fold's held-out loss as training logged it
    seconds: float


def latest_cv_run(workdir: Path, name: str) -> Path:
    """The newest run of ``name`` holding a cross_validation.json."""
    runs = sorted(
        (p for p in (workdir / "runs" / name).iterdir() if (p / "cross_validation.json").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if not runs:
        raise SystemExit(f"no cross-validated run of {name!r} under {workdir / 'runs'}")
    return runs[-1]


def score_variant(workdir: Path, name: str) -> Variant:
    """Rebuild the run's folds and score each fold model on the rows it held out."""
    from dltrain.backend import keras
    from dltrain.data.folds import assign_folds, pool_splits
    from dltrain.data.store import open_store
    from dltrain.models.saving import load_model
    from dltrain.recipe.load import load_recipe
    from dltrain.tasks import Task
    from dltrain.training.crossval import fold_request

    run_dir = latest_cv_run(workdir, name)
    document = json.loads((run_dir / "cross_validation.json").read_text(encoding="utf-8"))
    recipe = load_recipe(run_dir / "recipe.yaml").recipe
    dataset = open_store(workdir / "data" / name)
    pool = pool_splits(
        dataset.load_split("train", resample=False), dataset.load_split("validation")
    )
    _, request, _ = fold_request(recipe, dataset.manifest, Task.BINARY, pool)
    folds = assign_folds(len(pool[1]), request)
    x, y = pool
    scores = np.full(len(y), np.nan)
    fold_of = np.zeros(len(y), dtype=int)
    recorded = []
    for fold, entry in zip(folds, document["folds"], strict=True):
        if entry["held_out_examples"] != len(fold.held_out):
            raise SystemExit(f"{name} fold {fold.number}: the rebuilt fold has another size")
        model = load_model(run_dir / entry["run"] / "model.keras", compile=False)
        probabilities = np.asarray(model.predict(x[fold.held_out], batch_size=512, verbose=0))
        keras.backend.clear_session()
        # The check is the accuracy, not the loss: Keras computes a softmax's loss from its
        # logits, unclipped, so a few saturated mistakes make it differ from one computed here.
        accuracy = float(np.mean(probabilities.argmax(axis=1) == y[fold.held_out]))
        if abs(accuracy - entry["metrics"]["accuracy"]) > 0.5 / len(fold.held_out):
            raise SystemExit(
                f"{name} fold {fold.number}: held-out accuracy {accuracy:.4f} here, "
                f"{entry['metrics']['accuracy']:.4f} in training: not the same rows or model"
            )
        scores[fold.held_out] = probabilities[:, -1]
        fold_of[fold.held_out] = fold.number
        recorded.append(entry["metrics"]["loss"])
    return Variant(name, y, scores, fold_of, recorded, float(document["seconds"]))


def f1_parts(labels: np.ndarray, flagged: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive class."""
    tp = float(np.sum(flagged & (labels == 1)))
    precision = tp / max(1.0, float(flagged.sum()))
    recall = tp / max(1.0, float(np.sum(labels == 1)))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def per_fold(labels: np.ndarray, scores: np.ndarray, fold_of: np.ndarray) -> dict[str, list[float]]:
    """Each fold's precision, recall, F1 at 0.5, and F1 at a threshold the other folds chose."""
    from dltrain.evaluation.threshold import choose_threshold, parse_objective

    out: dict[str, list[float]] = {k: [] for k in ("precision", "recall", "f1", "f1_tuned", "t")}
    for k in sorted(set(fold_of.tolist())):
        mine, others = fold_of == k, fold_of != k
        p, r, f = f1_parts(labels[mine], scores[mine] >= 0.5)
        chosen = choose_threshold(
            labels[others], scores[others], parse_objective("f1"), "other folds"
        )
        out["precision"].append(p)
        out["recall"].append(r)
        out["f1"].append(f)
        out["f1_tuned"].append(f1_parts(labels[mine], scores[mine] >= chosen.value)[2])
        out["t"].append(chosen.value)
    return out


def summary(name: str, labels: np.ndarray, scores: np.ndarray, fold_of: np.ndarray) -> dict:
    """Mean ± sd of each per-fold figure, the folds' F1s, and the messages wrong at 0.5."""
    folds = per_fold(labels, scores, fold_of)
    row: dict = {"variant": name}
    for key, values in folds.items():
        row[key] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values)}
    row["f1_by_fold"] = [round(v, 4) for v in folds["f1"]]
    flagged = scores >= 0.5
    row["false_negatives"] = int(np.sum(~flagged & (labels == 1)))
    row["false_positives"] = int(np.sum(flagged & (labels == 0)))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"))
    args = parser.parse_args(argv)
    variants = {n: score_variant(args.workdir, n) for n in args.names}
    rows = []
    for v in variants.values():
        row = summary(v.name, v.labels, v.scores, v.fold_of)
        row["loss"] = statistics.fmean(v.recorded_loss)
        row["seconds"] = v.seconds
        rows.append(row)
    for a, b in args.pair:
        va, vb = variants[a], variants[b]
        if not (np.array_equal(va.labels, vb.labels) and np.array_equal(va.fold_of, vb.fold_of)):
            raise SystemExit(f"{a} and {b} were not cut into the same folds")
        mean = (va.scores + vb.scores) / 2
        rows.append(summary(f"mean of {a} and {b}", va.labels, mean, va.fold_of))
        both_wrong = ((va.scores >= 0.5) != (va.labels == 1)) & (
            (vb.scores >= 0.5) != (vb.labels == 1)
        )
        rows[-1]["wrong_in_both"] = int(both_wrong.sum())
    json.dump(rows, sys.stdout, indent=1)
    print()
    for row in rows:
        print(
            f"{row['variant']}: F1 {row['f1']['mean']:.4f} ± {row['f1']['sd']:.4f} "
            f"(P {row['precision']['mean']:.4f}, R {row['recall']['mean']:.4f}; "
            f"FN {row['false_negatives']}, FP {row['false_positives']}); threshold from the "
            f"other folds: F1 {row['f1_tuned']['mean']:.4f} ± {row['f1_tuned']['sd']:.4f}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
