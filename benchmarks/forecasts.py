"""Forecasts against naive: `init → prepare → train → evaluate` with no edits on real series.

Each series ships inside a Python package (statsmodels, installed by the `bench` extra:
`pip install -e '.[bench]'`) or lies in /work/shared/data/timeseries; each is written to a CSV with
a date column, then, in its own folder, a user's four commands run from the shell:

    dltrain init series.csv --target value --task forecasting
    dltrain prepare && dltrain train && dltrain evaluate --json

The table holds, on the test windows: the model's MAE, the naive (last value) and seasonal naive
(the value one season before) MAE on the same windows, the ratios, and training time. The
series cover trend (co2, realgdp, airline), seasons (co2 weekly, Melbourne daily, airline and
elnino monthly, realgdp quarterly), cycles (sunspots), a level shift (nile), noise (infl), and
missing steps (co2 lacks 59 weeks, Melbourne two days).

    .venv/bin/python benchmarks/forecasts.py                      # every series, seed 42
    .venv/bin/python benchmarks/forecasts.py --seeds 42 43 --write-results
    .venv/bin/python benchmarks/forecasts.py --split validation --set data.series.transform=none

``--set`` passes an override to prepare and train (to compare choices on the validation split);
the headline table uses none. Other processes on the machine show up in the training times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from results import write_section

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work" / "forecasts"  # git-ignored
SHARED = REPO.parent / "shared" / "data" / "timeseries"
SECTION_TITLE = "## Forecasts against naive"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}


def _statsmodels(name: str) -> pd.DataFrame:
    import statsmodels.api as sm

    data: pd.DataFrame = getattr(sm.datasets, name).load_pandas().data
    return data


def co2() -> pd.Series:
    """Weekly Mauna Loa CO2 (ppm) 1958-2001: trend and season; the 59 missing weeks dropped, so
    the file has missing steps."""
    return _statsmodels("co2")["co2"].dropna()


def _yearly(name: str, year: str, value: str) -> pd.Series:
    data = _statsmodels(name)
    index = pd.to_datetime(data[year].astype(int).astype(str) + "-01-01")
    return pd.Series(data[value].to_numpy(), index=index)


def sunspots() -> pd.Series:
    """Yearly sunspot activity 1700-2008: an 11-year cycle, no usual season."""
    return _yearly("sunspots", "YEAR", "SUNACTIVITY")


def nile() -> pd.Series:
    """Yearly Nile flow at Aswan 1871-1970: noise around a level that shifts in 1899."""
    return _yearly("nile", "year", "volume")


def _quarterly(value: str) -> pd.Series:
    data = _statsmodels("macrodata")
    index = pd.PeriodIndex.from_fields(
        year=data["year"].astype(int), quarter=data["quarter"].astype(int), freq="Q"
    ).to_timestamp()
    return pd.Series(data[value].to_numpy(), index=index)


def realgdp() -> pd.Series:
    """US real GDP, quarterly 1959-2009: a strong trend."""
    return _quarterly("realgdp")


def infl() -> pd.Series:
    """US inflation, quarterly 1959-2009: noisy, little structure."""
    return _quarterly("infl")


def elnino() -> pd.Series:
    """Monthly Pacific sea surface temperature 1950-2010 (wide, a column a month → long)."""
    data = _statsmodels("elnino")
    long = data.melt(id_vars="YEAR", var_name="month", value_name="value")
    month = pd.to_datetime(long["month"], format="%b").dt.month
    long.index = pd.to_datetime(dict(year=long["YEAR"].astype(int), month=month, day=1))
    return long["value"].sort_index()


def _shared(file: str, column: str) -> pd.Series:
    data = pd.read_csv(SHARED / file)
    return pd.Series(data[column].to_numpy(), index=pd.to_datetime(data.iloc[:, 0]))


def melbourne() -> pd.Series:
    """Daily minimum temperatures, Melbourne 1981-1990 (two New Year's Eves missing)."""
    return _shared("daily-min-temperatures.csv", "Temp")


def airline() -> pd.Series:
    """Monthly airline passengers 1949-1960: trend and a growing season."""
    return _shared("airline-passengers.csv", "Passengers")


SERIES: dict[str, Callable[[], pd.Series]] = {
    "co2": co2,
    "sunspots": sunspots,
    "nile": nile,
    "realgdp": realgdp,
    "infl": infl,
    "elnino": elnino,
    "melbourne": melbourne,
    "airline": airline,
}


def dltrain(folder: Path, *args: str) -> tuple[float, str]:
    """Run one dltrain command in ``folder``: its wall time and stdout."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dltrain", *args],
        cwd=folder,
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"dltrain {' '.join(args)} in {folder} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


@dataclass
class Outcome:
    series: str
    seed: int
    steps: int
    frequency: str
    season: int | None
    lookback: int
    windows: int
    mae: float
    naive: float
    seasonal: float | None
    train_seconds: float


def run_series(name: str, seed: int, split: str, overrides: list[str], tag: str = "") -> Outcome:
    """init → prepare → train → evaluate on one series in a fresh folder."""
    folder = WORK / f"{name}-{seed}{tag}"
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    values = SERIES[name]()
    frame = pd.DataFrame({"date": values.index.strftime("%Y-%m-%d"), "value": values.to_numpy()})
    frame.to_csv(folder / "series.csv", index=False)
    sets = [a for o in [f"seed={seed}", *overrides] for a in ("--set", o)]
    dltrain(folder, "init", "series.csv", "--target", "value", "--task", "forecasting")
    dltrain(folder, "prepare", *sets)
    seconds, _ = dltrain(folder, "train", *sets)
    _, out = dltrain(folder, "evaluate", "--split", split, "--json", "--no-plots")
    document = json.loads(out)
    metrics, baselines = document["metrics"], document["baselines"]  # evaluate's own baselines
    data = folder / "data" / "series"
    manifest = json.loads((data / "manifest.json").read_text())
    naive = float(baselines["naive"]["mae"])
    seasonal = baselines["seasonal_naive"]["mae"] if "seasonal_naive" in baselines else None
    return Outcome(
        series=name,
        seed=seed,
        steps=manifest["series"]["steps"],
        frequency=(manifest["features"].get("frequency") or "").split(";")[0],
        season=manifest["series"].get("season"),
        lookback=manifest["features"]["shape"][0],
        windows=manifest["series"]["windows"][split],
        mae=float(metrics["mae"]),
        naive=naive,
        seasonal=seasonal,
        train_seconds=seconds,
    )


def table(outcomes: list[Outcome]) -> str:
    """One Markdown row per series: the mean over seeds, and the ratios' range."""
    lines = [
        "| series | steps | season | lookback | windows | model MAE | naive MAE | seasonal naive "
        "MAE | model / naive | model / seasonal naive | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(o.series for o in outcomes):
        runs = [o for o in outcomes if o.series == name]
        first = runs[0]
        mae = float(np.mean([o.mae for o in runs]))
        ratios = [o.mae / o.naive for o in runs]
        seasonal = "—" if first.seasonal is None else f"{first.seasonal:.4g}"
        to_seasonal = "—"
        if first.seasonal is not None:
            to_seasonal = _range([o.mae / first.seasonal for o in runs])
        lines.append(
            f"| {name} | {first.steps:,} | {first.season or '—'} | {first.lookback} | "
            f"{first.windows} | {mae:.4g} | {first.naive:.4g} | {seasonal} | {_range(ratios)} | "
            f"{to_seasonal} | {np.mean([o.train_seconds for o in runs]):.0f} |"
        )
    return "\n".join(lines)


def _range(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="+", choices=list(SERIES), default=list(SERIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--split", choices=["validation", "test"], default="test")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tag", default="", help="suffix of the work folders (runs side by side)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    outcomes = []
    for name in args.series:
        for seed in args.seeds:
            outcome = run_series(name, seed, args.split, args.overrides, args.tag)
            outcomes.append(outcome)
            print(
                f"{name} seed {seed}: MAE {outcome.mae:.4g}, naive {outcome.naive:.4g} "
                f"({outcome.mae / outcome.naive:.3f}x), {outcome.train_seconds:.0f}s",
                flush=True,
            )
    markdown = table(outcomes)
    print(markdown)
    if args.write_results:
        write_section(_section(markdown, args), SECTION_TITLE)


def _section(markdown: str, args: Any) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "benchmarks/forecasts.py --seeds " + " ".join(str(s) for s in args.seeds)
    return (
        f"{SECTION_TITLE} ({stamp})\n\n"
        f"`.venv/bin/python {command}`: each series written to a CSV with a date column, then "
        f"`dltrain init series.csv --target value --task forecasting && dltrain prepare && "
        f"dltrain train && dltrain evaluate` with no edits ({args.split} split; the seed set "
        f"with `--set seed=S` on prepare and train). Naive: the window's last value; seasonal "
        f"naive: the value one season before (`simple_forecast_maes`). Ratios are the mean "
        f"over seeds (range).\n\n"
        f"{markdown}\n\n"
        f"Data: {DATA_NOTE}\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}; "
        f"training times include that contention.\n"
    )


DATA_NOTE = (
    "statsmodels 0.15 `datasets`: co2 (weekly Mauna Loa CO2 1958-2001, the 59 missing weeks "
    "dropped from the file, so prepare puts back missing steps), sunspots (yearly 1700-2008), "
    "nile (yearly flow 1871-1970), macrodata realgdp and infl (quarterly 1959-2009), elnino "
    "(monthly sea temperature 1950-2010, melted from one column a month); "
    "/work/shared/data/timeseries: melbourne (daily minimum temperatures 1981-1990, Time "
    "Series Data Library) and airline (monthly passengers 1949-1960)."
)


if __name__ == "__main__":
    main()
