"""A ``dltrain tune`` study in MLflow: one parent run per study, each trial a child run of it.

The parent's id is kept in the study folder (``mlflow.json``), so a study resumed later goes on
in the same parent run. Each trial process opens its child run itself
(training/tracking.py ``start_tracking`` with the parent).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from dltrain.atomic import write_json_atomic
from dltrain.evaluation.comparison import flatten
from dltrain.recipe.schema import Tracking
from dltrain.run_info import MlflowRef
from dltrain.tracking.mlflow_run import MlflowRun

if TYPE_CHECKING:
    from dltrain.tuning.plan import TunePlan
    from dltrain.tuning.report import TuneReport


def open_study_run(plan: TunePlan) -> MlflowRun | None:
    """The study's parent run when the recipe tracks: the one ``mlflow.json`` in the study's
    folder names, or a new one with the base recipe as its params; None when it does not track.
    """
    recipe = plan.loaded.recipe
    if recipe.train.tracking is not Tracking.MLFLOW:
        return None
    known = plan.files.mlflow
    if known.is_file():
        return MlflowRun.attach(MlflowRef.model_validate(json.loads(known.read_text())))
    run = MlflowRun.start(
        recipe.train.tracking_uri,
        plan.workdir,
        recipe.name,
        f"tune {plan.study_name}",
        {"dltrain.study": plan.study_name},
    )
    if run.ref is not None:
        write_json_atomic(known, run.ref.to_json())
    run.log_params(flatten(recipe.model_dump(mode="json")))
    return run


def close_study_run(run: MlflowRun, plan: TunePlan, report: TuneReport) -> list[str]:
    """Log the study's best value (``best_<objective>``) and its report files (summary,
    trials.csv, best.yaml, plots) to the parent run; end it.

    Returns:
        Warnings of tracking that failed (the study itself is saved).
    """
    best = report.best
    if best is not None and best.value is not None:
        run.log_metrics({f"best_{plan.spec.objective}": best.value}, step=0)
    for path in (report.summary, report.trials_csv, report.best_recipe, *report.plots):
        if path is not None:
            run.log_artifact(path, "study")
    run.end()
    return run.warnings
