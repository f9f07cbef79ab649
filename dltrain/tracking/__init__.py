"""Experiment tracking (MLflow): which store a run logs to, and the check that MLflow is there.

Light: no MLflow, no TensorFlow. The client lives in ``tracking/mlflow_run.py``, imported only
by a command that tracks (MLflow takes ~2.7 s to import and is the optional ``mlflow`` extra).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dltrain.errors import UsageError

# MLflow 3's own default store is ``sqlite:///mlflow.db`` in the working directory; dltrain's
# sits beside runs/ and data/, with the artifacts in a folder next to it.
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def default_uri(workdir: Path) -> str:
    """The embedded store: ``sqlite:///<workdir>/mlflow.db``."""
    return f"sqlite:///{(workdir / STORE_FILE).resolve()}"


def artifact_root(workdir: Path) -> Path:
    """Where the embedded store keeps artifacts (a team server decides its own)."""
    return (workdir / ARTIFACTS_DIR).resolve()


def parse_track(value: str) -> tuple[str, str | None]:
    """``--track mlflow[:URI]`` as (tracking, URI or None for the default store).

    Raises:
        UsageError: anything but ``mlflow`` or ``mlflow:URI``.
    """
    name, _, uri = value.partition(":")
    if name != "mlflow" or (value != "mlflow" and not uri):
        raise UsageError(
            f"--track is {value!r}; expected `mlflow` (the embedded store beside runs/) or "
            f"`mlflow:URI` (e.g. mlflow:http://127.0.0.1:5000 or mlflow:sqlite:///mlflow.db)."
        )
    return name, uri or None


def require_mlflow() -> None:
    """Refuse tracking when MLflow is not installed, before anything is trained.

    Raises:
        UsageError: MLflow is missing.
    """
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError(
            "Tracking to MLflow was asked for (train.tracking: mlflow or --track mlflow), but "
            "MLflow is not installed. Install the extra: pip install 'dltrain[mlflow]' (or "
            "pip install mlflow), or drop --track / set train.tracking: none."
        )
