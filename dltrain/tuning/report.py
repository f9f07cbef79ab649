"""After a search: leaderboard, parameter importances, plots, trials.csv, summary.json, best.yaml.

Everything is computed from the study, so the report covers every trial of every session and
every worker, not only the ones this process ran. Files land in ``runs/<recipe>/tune/<study>/``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from dltrain.atomic import atomic_path, write_json_atomic, write_text_atomic
from dltrain.faults import crash_point
from dltrain.recipe import load_recipe
from dltrain.tuning.hparams import write_hparams
from dltrain.tuning.plan import TunePlan
from dltrain.tuning.records import TrialRecord, trial_record
from dltrain.tuning.runner import TuneOutcome
from dltrain.tuning.space import ordered_overrides
from dltrain.tuning.storage import quiet_optuna

LEADERBOARD_SIZE = 10
MIN_TRIALS_FOR_IMPORTANCES = 4  # below this, importances are noise presented as insight


@dataclass(frozen=True)
class TuneReport:
    records: list[TrialRecord]
    leaderboard: list[TrialRecord]  # completed trials, best first
    counts: dict[str, int]
    importances: dict[str, float] | None
    importances_note: str | None  # why there are none
    best_recipe: Path | None
    plots: list[Path] = field(default_factory=list)
    skipped_plots: dict[str, str] = field(default_factory=dict)
    trials_csv: Path | None = None
    summary: Path | None = None
    document: dict[str, Any] = field(default_factory=dict)
    hparams: Path | None = None  # TensorBoard's HParams events (train.tensorboard)

    @property
    def best(self) -> TrialRecord | None:
        return self.leaderboard[0] if self.leaderboard else None


def build_report(plan: TunePlan, outcome: TuneOutcome) -> TuneReport:
    """Compute the report from the whole study and write its files (atomically).

    Args:
        plan: the search.
        outcome: what this session did.

    Returns:
        The report, ``document`` being what ``--json`` prints and summary.json holds.
    """
    study = outcome.study
    with quiet_optuna():
        trials = study.get_trials(deepcopy=False)
    records = [trial_record(t, plan.space) for t in trials]
    maximize = plan.spec.resolved_direction.value == "maximize"
    completed = [r for r in records if r.state == "complete" and r.value is not None]
    completed.sort(key=lambda r: float(r.value or 0.0), reverse=maximize)
    counts = dict(Counter(r.state for r in records))
    importances, note = _importances(study, len(completed))
    files = plan.files
    best_recipe = write_best_recipe(plan, completed[0]) if completed else None
    plots, skipped = write_plots(study, plan, files.path)
    hparams = None
    if plan.loaded.recipe.train.tensorboard:  # the study in TensorBoard's HParams tab
        hparams = files.hparams
        write_hparams(trials, list(plan.space.params), plan.spec.objective, hparams)
    trials_csv = files.trials_csv
    write_text_atomic(trials_csv, trials_table(records, list(plan.space.params)))
    report = TuneReport(
        records=records,
        leaderboard=completed[:LEADERBOARD_SIZE],
        counts=counts,
        importances=importances,
        importances_note=note,
        best_recipe=best_recipe,
        plots=plots,
        skipped_plots=skipped,
        trials_csv=trials_csv,
        summary=files.summary,
        hparams=hparams,
    )
    document = summary_document(plan, outcome, report)
    crash_point("tune.report")
    write_json_atomic(files.summary, document)
    return TuneReport(**{**report.__dict__, "document": document})


def write_best_recipe(plan: TunePlan, best: TrialRecord) -> Path:
    """``best.yaml``: the recipe with the winning values, ready for ``dltrain train --recipe``."""
    loaded = load_recipe(plan.files.base_recipe, ordered_overrides(best.params))
    path = plan.files.best_recipe
    tuned = ", ".join(f"{k}={_show(v)}" for k, v in best.params.items())
    at_epoch = f" at epoch {best.best_epoch}" if best.best_epoch else ""
    header = (
        f"# Best trial of study '{plan.study_name}' (dltrain tune): trial {best.number}, "
        f"{plan.spec.objective} {best.value:.6g}{at_epoch}.\n"
        f"# Tuned: {tuned}\n"
        f"# Train it: dltrain train --recipe {path}\n"
    )
    write_text_atomic(path, header + loaded.to_yaml())
    return path


def _importances(study: optuna.Study, completed: int) -> tuple[dict[str, float] | None, str | None]:
    if completed < MIN_TRIALS_FOR_IMPORTANCES:
        return None, (
            f"they need at least {MIN_TRIALS_FOR_IMPORTANCES} completed trials to mean anything "
            f"({completed} so far)"
        )
    try:
        with quiet_optuna():
            found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:
        return None, f"parameter importances could not be computed: {exc}"
    if not found:
        return None, "no parameter was sampled in every completed trial"
    return {k: float(v) for k, v in found.items()}, None


def write_plots(
    study: optuna.Study, plan: TunePlan, folder: Path
) -> tuple[list[Path], dict[str, str]]:
    """Optimisation history, parameter importances and learning curves, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, works on servers and in CI
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    objective = plan.spec.objective
    makers: dict[str, Callable[[], Any]] = {
        "history.png": lambda: optuna_plots.plot_optimization_history(study, target_name=objective),
        "importances.png": lambda: optuna_plots.plot_param_importances(
            study, target_name=objective
        ),
        "intermediate.png": lambda: optuna_plots.plot_intermediate_values(study),
    }
    written: list[Path] = []
    skipped: dict[str, str] = {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    for name, make in makers.items():
        if name == "importances.png" and len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
            skipped[name] = f"needs at least {MIN_TRIALS_FOR_IMPORTANCES} completed trials"
            continue
        try:
            with quiet_optuna():
                axes = make()
        except Exception as exc:  # a plot is a bonus: one failing must not lose the others
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        figure = getattr(axes, "figure", None) or getattr(axes.flat[0], "figure", None)
        if figure is None:
            skipped[name] = "Optuna returned no figure"
            continue
        if name == "intermediate.png":  # Optuna's steps are dltrain's epochs
            axes.set_xlabel("epoch")
            axes.set_ylabel(objective)
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        path = folder / name
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=110)
        plt.close(figure)
        written.append(path)
    return written, skipped


def trials_table(records: list[TrialRecord], params: list[str]) -> str:
    """Every trial as CSV: number, state, value, timing, epochs, then one column per parameter."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    head = ["number", "state", "value", "seconds", "epochs_run", "best_epoch", "pruned_at_epoch"]
    tail = ["run_dir", "worker", "retry_of", "reason"]
    writer.writerow([*head, *params, *tail])
    for r in records:
        row = [r.number, r.state, r.value, r.seconds, r.epochs_run, r.best_epoch, r.pruned_at_epoch]
        row += [_csv_value(r.params.get(p)) for p in params]
        row += [r.run_dir, r.worker, r.retry_of, r.reason]
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


def summary_document(plan: TunePlan, outcome: TuneOutcome, report: TuneReport) -> dict[str, Any]:
    """The JSON document ``--json`` prints and summary.json keeps."""
    best = report.best
    seconds = outcome.seconds
    ran = set(outcome.trials_run)
    finished_here = [
        r
        for r in report.records
        if r.number in ran and r.state in ("complete", "pruned", "fail") and not r.interrupted
    ]
    return {
        "study": plan.study_name,
        "storage": plan.storage_shown,
        "recipe": plan.loaded.recipe.name,
        "objective": plan.spec.objective,
        "direction": plan.spec.resolved_direction.value,
        "sampler": plan.spec.sampler.value,
        "pruner": plan.spec.pruner.value,
        "num_trials": plan.num_trials,
        "counts": report.counts,
        "best": None
        if best is None
        else {
            "trial": best.number,
            "value": best.value,
            "best_epoch": best.best_epoch,
            "params": best.params,
            "run": best.run_dir,
            "recipe": str(report.best_recipe) if report.best_recipe else None,
        },
        "leaderboard": [r.to_json() for r in report.leaderboard],
        "importances": report.importances,
        "trials": [r.to_json() for r in report.records],
        "session": {
            "trials_run": len(finished_here),
            "recovered": outcome.recovered,
            "seconds": round(seconds, 2),
            "trials_per_hour": round(len(finished_here) * 3600 / seconds, 1) if seconds else None,
            "stopped_because": outcome.stop_reason,
            "interrupted": outcome.interrupted,
        },
        "files": {
            "folder": str(plan.study_dir),
            "best_recipe": str(report.best_recipe) if report.best_recipe else None,
            "trials_csv": str(report.trials_csv) if report.trials_csv else None,
            "summary": str(report.summary) if report.summary else None,
            "plots": [str(p) for p in report.plots],
        },
    }


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _csv_value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
