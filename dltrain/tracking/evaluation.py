"""An evaluation logged to MLflow: the run's MLflow run (run.json's ``mlflow``) gets the metrics
document's numbers and its files (metrics, report, model card, plots) as artifacts."""

from __future__ import annotations

import re
from pathlib import Path

from dltrain.evaluation.comparison import flatten
from dltrain.runs import RunFolder

# MLflow names: alphanumerics, underscores, dashes, periods, spaces, colons and slashes.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")
_NOT_METRICS = ("schema_version",)


def evaluation_metrics(document: dict[str, object], label: str) -> dict[str, float]:
    """The metrics document's numbers as ``{label.name: value}`` (``test.accuracy``,
    ``test.baselines.gbm.accuracy``, ``test.num_examples``)."""
    logged: dict[str, float] = {}
    for key, value in flatten(document).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or key in _NOT_METRICS:
            continue
        name = key.removeprefix("metrics.")
        logged[_UNSAFE.sub("_", f"{label}.{name}")] = float(value)
    return logged


def log_evaluation(
    run_dir: Path,
    workdir: Path,
    document: dict[str, object],
    metrics_path: Path,
    uri: str | None,
    model_card: bool = False,
) -> list[str]:
    """Log an evaluation to the run's MLflow run; a run that has none gets one (its id then goes
    into run.json, so the next evaluate logs there too).

    Args:
        run_dir: the evaluated run.
        workdir: the folder holding runs/ (and the embedded store).
        document: the metrics document as metrics.json holds it.
        metrics_path: the metrics file written; its examples' label (test, validation,
            data-<name>) prefixes the metrics and names the artifacts' folder
            (``evaluation/<label>/``).
        uri: --track's URI for a run that has no MLflow run yet; None: the embedded store.
        model_card: this evaluation wrote MODEL_CARD.md, which is uploaded too.

    Returns:
        Warnings of tracking that failed (the evaluation itself is saved).
    """
    from dltrain.tracking.mlflow_run import MlflowRun

    label = label_of(metrics_path)
    files = RunFolder(run_dir)
    info = files.read_info()
    if info.mlflow is not None:
        run = MlflowRun.attach(info.mlflow)
    else:
        name = info.recipe or run_dir.parent.name
        run = MlflowRun.start(uri, workdir, name, run_dir.name, {"dltrain.run_dir": str(run_dir)})
        if run.ref is not None:
            info.mlflow = run.ref
            files.write_info(info)
    run.log_metrics(evaluation_metrics(document, label), step=0)
    folder = f"evaluation/{label}"
    for path in (metrics_path, files.report(label), *([files.model_card] * model_card)):
        run.log_artifact(path, folder)
    run.log_artifact(files.plots(label), f"{folder}/plots")
    run.end()
    return run.warnings


def label_of(metrics_path: Path) -> str:
    """The examples' label a metrics file is named by (runs.py ``metrics_file``)."""
    stem = metrics_path.stem
    return "test" if stem == "metrics" else stem.removeprefix("metrics-")
