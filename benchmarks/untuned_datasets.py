"""Benchmark: dltrain as a new user runs it, on public datasets nobody here tuned for.

For each dataset: write it as a user would have it (a CSV, an .npz of arrays, a folder of
PNGs), then run from the shell, with no edits,

    dltrain init SOURCE --target COLUMN [--task forecasting]
    dltrain prepare && dltrain train && dltrain evaluate --json

and read, from `evaluate --json`, the model's key metric on the test split beside the baselines
evaluate computes on the same test examples: the trivial one (class prior, training mean, naive
last value) and gradient boosting (scikit-learn's HistGradientBoosting, tables and small images).

Goals (issue #13): the model never loses to the trivial or naive baseline; it matches or beats
gradient boosting on at least 80% of the tables and images; every forecast is at most 0.9x the
naive MAE.

The datasets ship inside Python packages: scikit-learn (always installed) and statsmodels (the
`bench` extra: `pip install -e .[bench]`); Melbourne's temperatures come from shared/data.

    .venv/bin/python benchmarks/untuned_datasets.py                 # every dataset
    .venv/bin/python benchmarks/untuned_datasets.py --only wine,co2 # some of them

Work files go to benchmarks/work/untuned/ (git-ignored); the table replaces its section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from results import write_section

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "untuned"
SHARED = HERE.parent.parent / "shared" / "data"
DLTRAIN = [sys.executable, "-m", "dltrain"]
KEY_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}
KEY_METRIC["forecasting"] = "mae"
TRIVIAL = {"binary": "prior", "multiclass": "prior", "regression": "mean", "forecasting": "naive"}
FORECAST_GOAL = 0.9  # at most this share of the naive forecast's MAE


@dataclass(frozen=True)
class Dataset:
    """A public dataset, how it is written for the user, and what they ask of it."""

    name: str
    kind: str  # what the row of the table says: binary table, multiclass table, images …
    source: str  # the package it ships in
    write: Callable[[Path], Path]  # writes the user's file or folder; returns its path
    target: str | None = None
    forecasting: bool = False


# --- the datasets, written as a user would hold them -------------------------------------------


def _sklearn_table(loader: str, target: str, labels: list[str] | None = None) -> Callable:
    def write(folder: Path) -> Path:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)(as_frame=True)
        frame = bunch.frame.rename(columns={"target": target})
        if labels is not None:
            frame[target] = [labels[int(v)] for v in frame[target]]
        path = folder / f"{loader.removeprefix('load_')}.csv"
        frame.to_csv(path, index=False)
        return path

    return write


def _digits_arrays(folder: Path) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = folder / "digits.npz"  # 8x8 pixels valued 0-16, as the package ships them
    np.savez(path, x=digits.images.astype(np.uint8), y=digits.target.astype(np.int64))
    return path


def _digits_folders(folder: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = folder / "digits"
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = np.clip(image * 16, 0, 255).astype(np.uint8)  # as a scanner would save them
        Image.fromarray(pixels, mode="L").save(root / str(label) / f"{i:04d}.png")
    return root


def _statsmodels_table(module: str, target: str, derive: Callable | None = None) -> Callable:
    def write(folder: Path) -> Path:
        import importlib

        frame = importlib.import_module(f"statsmodels.datasets.{module}").load_pandas().data
        if derive is not None:
            frame = derive(frame)
        path = folder / f"{module}.csv"
        frame.to_csv(path, index=False)
        return path

    return write


def _had_affair(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(had_affair=np.where(frame["affairs"] > 0, "yes", "no"))
    return frame.drop(columns=["affairs"])


def _vote(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(vote=np.where(frame["vote"] > 0, "dole", "clinton"))


def _statsmodels_series(module: str, column: str, dates: Callable[[pd.DataFrame], pd.Index]):
    def write(folder: Path) -> Path:
        import importlib

        frame = importlib.import_module(f"statsmodels.datasets.{module}").load_pandas().data
        series = pd.DataFrame({"date": dates(frame), column: frame[column].to_numpy()})
        path = folder / f"{module}.csv"
        series.to_csv(path, index=False, date_format="%Y-%m-%d")
        return path

    return write


def _yearly(first_column: str) -> Callable[[pd.DataFrame], pd.Index]:
    def dates(frame: pd.DataFrame) -> pd.Index:
        return pd.to_datetime(frame[first_column].astype(int).astype(str) + "-01-01")

    return dates


def _quarterly(frame: pd.DataFrame) -> pd.Index:
    return pd.PeriodIndex.from_fields(
        year=frame["year"].astype(int), quarter=frame["quarter"].astype(int), freq="Q"
    ).to_timestamp()


def _melbourne(folder: Path) -> Path:
    path = folder / "daily-min-temperatures.csv"
    shutil.copy(SHARED / "timeseries" / "daily-min-temperatures.csv", path)
    return path


def _co2(folder: Path) -> Path:
    import statsmodels.datasets.co2 as co2

    frame = co2.load_pandas().data  # weekly, Saturdays, 1958-2001, with missing values
    path = folder / "co2.csv"
    pd.DataFrame({"date": frame.index, "co2": frame["co2"].to_numpy()}).to_csv(
        path, index=False, date_format="%Y-%m-%d"
    )
    return path


DATASETS = [
    Dataset("breast_cancer", "binary table", "scikit-learn",
            _sklearn_table("load_breast_cancer", "diagnosis", ["malignant", "benign"]),
            target="diagnosis"),
    Dataset("wine", "multiclass table", "scikit-learn", _sklearn_table("load_wine", "cultivar"),
            target="cultivar"),
    Dataset("iris", "multiclass table", "scikit-learn",
            _sklearn_table("load_iris", "species", ["setosa", "versicolor", "virginica"]),
            target="species"),
    Dataset("diabetes", "regression table", "scikit-learn",
            _sklearn_table("load_diabetes", "progression"), target="progression"),
    Dataset("fair", "binary table", "statsmodels", _statsmodels_table("fair", "had_affair",
            _had_affair), target="had_affair"),
    Dataset("anes96", "binary table", "statsmodels", _statsmodels_table("anes96", "vote", _vote),
            target="vote"),
    Dataset("randhie", "regression table", "statsmodels", _statsmodels_table("randhie", "mdvis"),
            target="mdvis"),
    Dataset("digits_arrays", "images (arrays)", "scikit-learn", _digits_arrays),
    Dataset("digits_folders", "images (folders)", "scikit-learn", _digits_folders),
    Dataset("co2", "series (weekly)", "statsmodels", _co2, target="co2", forecasting=True),
    Dataset("sunspots", "series (yearly)", "statsmodels",
            _statsmodels_series("sunspots", "SUNACTIVITY", _yearly("YEAR")),
            target="SUNACTIVITY", forecasting=True),
    Dataset("macrodata_unemp", "series (quarterly)", "statsmodels",
            _statsmodels_series("macrodata", "unemp", _quarterly), target="unemp",
            forecasting=True),
    Dataset("melbourne", "series (daily)", "shared/data", _melbourne, target="Temp",
            forecasting=True),
]  # fmt: skip


# --- running dltrain as the user would ------------------------------------------------------


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One dltrain command in the dataset's folder; its stderr kept for the failure message."""
    done = subprocess.run(
        [*DLTRAIN, *args], cwd=folder, capture_output=True, text=True, env=_environment()
    )
    if done.returncode not in (0, 1):  # 1: the job ran but failed a bar, still measured
        raise RuntimeError(f"dltrain {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def _environment() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def measure(dataset: Dataset, *, reuse: bool = False) -> dict[str, object]:
    """init → prepare → train → evaluate on one dataset; the figures for its row.

    With ``reuse``, a dataset already trained in its work folder is only evaluated again.
    """
    folder = WORK / dataset.name
    timing = folder / "train-seconds.txt"
    if not (reuse and timing.is_file()):
        train(dataset, folder)
    # 1,000 bootstrap resamples: whether gradient boosting's score lies inside the model's 95%
    # interval says if a gap between them is more than the test split's own noise
    document = json.loads(run(folder, "evaluate", "--json", "--bootstrap", "1000").stdout)
    task = document["task"]
    key = KEY_METRIC[task]
    baselines = document.get("baselines") or {}
    interval = document.get("intervals", {}).get(key) or {}
    return {
        "dataset": dataset.name,
        "kind": dataset.kind,
        "source": dataset.source,
        "task": task,
        "metric": key,
        "examples": document["num_examples"],
        "model": document["metrics"].get(key),
        "interval": (interval.get("low"), interval.get("high")),
        "trivial": (baselines.get(TRIVIAL[task]) or {}).get(key),
        "seasonal_naive": (baselines.get("seasonal_naive") or {}).get(key),
        "gbm": (baselines.get("gbm") or {}).get(key),
        "seconds": float(timing.read_text()),
        "warnings": document.get("warnings", []),
    }


def train(dataset: Dataset, folder: Path) -> None:
    """Write the dataset as the user holds it, then init, prepare and train, timed."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source = dataset.write(folder)
    init = ["init", str(source)]
    if dataset.target is not None:
        init += ["--target", dataset.target]
    if dataset.forecasting:
        init += ["--task", "forecasting"]
    started = time.perf_counter()
    run(folder, *init)
    run(folder, "prepare")
    run(folder, "train")
    (folder / "train-seconds.txt").write_text(f"{time.perf_counter() - started:.1f}")


# --- judging and writing the table ------------------------------------------------------------


def lower_is_better(metric: str) -> bool:
    return metric in ("rmse", "mae")


def verdicts(row: dict[str, object]) -> list[str]:
    """What the row says against the goals: losses to the trivial baseline, gbm, naive."""
    metric, model = str(row["metric"]), row["model"]
    if not isinstance(model, float):
        return ["no model metric"]
    found = []
    sign = 1.0 if lower_is_better(metric) else -1.0
    trivial, gbm = row["trivial"], row["gbm"]
    if isinstance(trivial, float) and sign * (model - trivial) > 0:
        found.append("loses to trivial")
    if isinstance(gbm, float) and sign * (model - gbm) > 0:
        low, high = row["interval"]  # type: ignore[misc]
        within = isinstance(low, float) and isinstance(high, float) and low <= gbm <= high
        found.append("below gbm, within the 95% interval" if within else "below gbm")
    forecast = row["task"] == "forecasting" and isinstance(trivial, float) and trivial > 0
    if forecast and model / trivial > FORECAST_GOAL:
        found.append(f"above {FORECAST_GOAL}x naive")
    return found


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return "–" if value is None else str(value)


def _model_cell(row: dict[str, object]) -> str:
    """The model's score and its 95% bootstrap interval."""
    low, high = row["interval"]  # type: ignore[misc]
    if isinstance(low, float) and isinstance(high, float):
        return f"{_cell(row['model'])} [{low:,.4g}, {high:,.4g}]"
    return _cell(row["model"])


def table(rows: list[dict[str, object]]) -> str:
    header = (
        "| dataset | kind | source | test examples | metric | model [95% interval] | trivial | "
        "gbm | model / trivial | train (s) | against the goals |\n"
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n"
    )
    lines = []
    for row in rows:
        model, trivial = row["model"], row["trivial"]
        ratio = (
            f"{model / trivial:.3f}"
            if isinstance(model, float) and isinstance(trivial, float) and trivial
            else "–"
        )
        lines.append(
            f"| {row['dataset']} | {row['kind']} | {row['source']} | {row['examples']} | "
            f"{row['metric']} | {_model_cell(row)} | {_cell(trivial)} | {_cell(row['gbm'])} | "
            f"{ratio} | {row['seconds']} | {', '.join(verdicts(row)) or 'met'} |"
        )
    return header + "\n".join(lines) + "\n"


def summary(rows: list[dict[str, object]]) -> str:
    """The three goals, counted."""
    losses = [r["dataset"] for r in rows if "loses to trivial" in verdicts(r)]
    compared = [r for r in rows if r["task"] != "forecasting" and isinstance(r["gbm"], float)]
    matched = [r for r in compared if "below gbm" not in verdicts(r)]
    close = [r for r in compared if "below gbm, within the 95% interval" in verdicts(r)]
    forecasts = [r for r in rows if r["task"] == "forecasting"]
    over = [r["dataset"] for r in forecasts if f"above {FORECAST_GOAL}x naive" in verdicts(r)]
    share = f"{len(matched)}/{len(compared)}" if compared else "–"
    return (
        f"- loses to the trivial or naive baseline: {', '.join(map(str, losses)) or 'none'}\n"
        f"- matches or beats gradient boosting (tables and images): {share}"
        f" (goal: at least 80%); {len(close)} more below it by less than the model's 95%"
        f" bootstrap interval\n"
        f"- forecasts above {FORECAST_GOAL}x naive MAE: {', '.join(map(str, over)) or 'none'}"
        f" of {len(forecasts)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated dataset names")
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate again the datasets already trained"
    )
    args = parser.parse_args()
    chosen = [d for d in DATASETS if not args.only or d.name in args.only.split(",")]
    rows, skipped = [], []
    for dataset in chosen:
        if dataset.source == "statsmodels" and not _has("statsmodels"):
            skipped.append(
                f"{dataset.name} (statsmodels is not installed: pip install -e .[bench])"
            )
            continue
        print(f"{dataset.name} …", file=sys.stderr, flush=True)
        rows.append(measure(dataset, reuse=args.reuse))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    text = table(rows) + "\n" + summary(rows)
    if skipped:
        text += "\nSkipped: " + "; ".join(skipped) + "\n"
    print(text)
    if not args.only:
        _write_results(text)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _write_results(text: str) -> None:
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    write_section(
        "## New-user runs on untuned public datasets (issue #13)\n\n"
        "`init → prepare → train → evaluate` with no edits, each dataset written as a user would "
        "hold it; the baselines are `evaluate`'s own, on the same test examples. "
        f"Machine: {machine}.\n\n"
        "    .venv/bin/python benchmarks/untuned_datasets.py\n\n" + text,
        "## New-user runs on untuned public datasets",
    )


if __name__ == "__main__":
    main()
