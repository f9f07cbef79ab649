"""MLflow tracking of a training run (``train.tracking: mlflow``): the recipe as params, every
epoch's logs as metrics, and the run's files as artifacts at the end.

MLflow is imported only here and in ``tracking/mlflow_run.py``, and only for a run that tracks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dltrain.backend import keras
from dltrain.evaluation.comparison import flatten
from dltrain.recipe.schema import Tracking
from dltrain.training.callbacks import Logs
from dltrain.training.plan import RunPlan

if TYPE_CHECKING:
    from dltrain.run_info import MlflowRef
    from dltrain.tracking.mlflow_run import MlflowRun
    from dltrain.training.record import RunRecord


class MlflowEpochs(keras.callbacks.Callback):
    """Logs each epoch's logs (loss, metrics, learning rate, seconds) at step ``epoch``."""

    def __init__(self, run: MlflowRun) -> None:
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        self.run.log_metrics(numbers, step=epoch)


def start_tracking(
    plan: RunPlan, record: RunRecord, workdir: Path, parent: MlflowRef | None = None
) -> MlflowRun | None:
    """Open the run's MLflow run and log the resolved recipe; None when the run does not track.

    Across machines only the chief logs. A resumed run logs on into the MLflow run run.json
    names. A new one gets a new MLflow run
    in the experiment named after the recipe (a ``tune`` trial: a child of ``parent``); its id
    goes into run.json so ``evaluate`` logs to the same run.

    Args:
        plan: the run's plan (its recipe says whether and where to track).
        record: the run's record, whose run.json gets the MLflow run's id.
        workdir: the folder holding runs/ and the embedded store.
        parent: the study's MLflow run, for a ``tune`` trial.
    """
    spec = plan.spec
    if spec.tracking is not Tracking.MLFLOW or (plan.trial and parent is None):
        return None
    if not plan.devices.is_chief:  # the chief logs the run; other workers write scratch
        return None
    from dltrain.tracking.mlflow_run import PARENT_TAG, MlflowRun

    known = record.info.mlflow
    if known is not None:
        return MlflowRun.attach(known)
    tags = {"dltrain.run_dir": str(record.run_dir)}
    name = record.run_dir.name
    if parent is not None:
        tags[PARENT_TAG] = parent.run_id
        trial = record.info.tune.trial if record.info.tune else None
        if trial is not None:
            tags["dltrain.trial"] = str(trial)
            name = f"trial {trial}"
    uri = parent.tracking_uri if parent is not None else spec.tracking_uri
    run = MlflowRun.start(uri, workdir, plan.recipe.name, name, tags=tags)
    if run.ref is not None:
        record.info.mlflow = run.ref
        record.write()
    run.log_params(flatten(plan.recipe.model_dump(mode="json")))
    return run


def end_tracking(run: MlflowRun | None, record: RunRecord, status: str = "FINISHED") -> list[str]:
    """Upload the run's model, plots, history, recipe and run.json; end the MLflow run.

    Args:
        run: the MLflow run, or None when the run does not track.
        record: the run's record (its folder).
        status: FINISHED, or FAILED / KILLED for a run that did not end well (nothing uploaded).

    Returns:
        Warnings of tracking that failed along the way (the run itself is sound).
    """
    if run is None:
        return []
    files = record.files
    if status == "FINISHED":
        for path in (files.model, files.learning_curves, files.history, files.recipe, files.info):
            run.log_artifact(path)
    run.end(status)
    return run.warnings
