"""One MLflow run, through MLflow's own client, where no failure ever stops dltrain.

A tracking store that is down or refuses a call turns into one warning (kept in ``warnings``)
and the run stops logging; training and evaluation go on. Library code: nothing is printed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dltrain.run_info import MlflowRef
from dltrain.tracking import artifact_root, default_uri

# A server that is down would otherwise be retried for minutes (7 retries, backoff 2).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

# MLflow's SQL store logs its schema migrations at INFO on first use; they are not the user's.
for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# log_batch takes at most 100 params and 1000 metrics a call; a param value at most 6000 chars.
PARAMS_PER_CALL = 100
MAX_PARAM_CHARS = 6000
PARENT_TAG = "mlflow.parentRunId"


class MlflowRun:
    """A run in an MLflow store; every call a no-op after the first failure."""

    def __init__(self, ref: MlflowRef | None, warnings: list[str] | None = None) -> None:
        self.ref = ref
        self.warnings: list[str] = warnings or []
        self._client = MlflowClient(ref.tracking_uri) if ref is not None else None

    @property
    def active(self) -> bool:
        return self._client is not None and self.ref is not None

    @classmethod
    def start(
        cls,
        uri: str | None,
        workdir: Path,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
    ) -> MlflowRun:
        """A new run in ``experiment`` (made when missing); an inactive one when that fails.

        Args:
            uri: the tracking URI; None for the embedded store beside runs/.
            workdir: the folder holding runs/ (and the embedded store).
            experiment: the experiment's name (the recipe's name).
            run_name: the run's name in MLflow (the run folder's name).
            tags: tags to set (``mlflow.parentRunId`` makes it a child run).
        """
        tracking_uri = uri or default_uri(workdir)
        try:
            client = MlflowClient(tracking_uri)
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                experiment_id = found.experiment_id
            else:
                location = None if uri else artifact_root(workdir).as_uri()
                experiment_id = client.create_experiment(experiment, artifact_location=location)
            run = client.create_run(experiment_id, tags=dict(tags or {}), run_name=run_name)
        except Exception as exc:  # noqa: BLE001 — a tracking failure must not lose the run
            return cls(None, [_failed(tracking_uri, "start a run", exc)])
        ref = MlflowRef(
            tracking_uri=tracking_uri, run_id=run.info.run_id, experiment_id=experiment_id
        )
        return cls(ref)

    @classmethod
    def attach(cls, ref: MlflowRef) -> MlflowRun:
        """The run ``ref`` names, to log more to (a resumed training, evaluate)."""
        run = cls(ref)
        run._call("reopen the run", lambda c, r: c.update_run(r, status="RUNNING"))
        return run

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``{dotted.key: value}``; lists and mappings as JSON, long values cut."""
        items = [Param(key, _text(value)) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_CALL):
            chunk = items[start : start + PARAMS_PER_CALL]
            self._call("log params", lambda c, r, chunk=chunk: c.log_batch(r, params=chunk))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log numeric ``metrics`` at ``step`` (the epoch for training)."""
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        if batch:
            self._call("log metrics", lambda c, r: c.log_batch(r, metrics=batch))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Upload a file or a folder (when it exists) into the run's artifacts."""
        if not path.exists():
            return
        if path.is_dir():
            self._call(
                f"upload {path.name}",
                lambda c, r: c.log_artifacts(r, str(path), folder or path.name),
            )
        else:
            self._call(f"upload {path.name}", lambda c, r: c.log_artifact(r, str(path), folder))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self._call("set a tag", lambda c, r, k=key, v=value: c.set_tag(r, k, v))

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run ended: FINISHED, FAILED or KILLED."""
        self._call("end the run", lambda c, r: c.set_terminated(r, status=status))

    def _call(self, what: str, action: Any) -> None:
        if self._client is None or self.ref is None:
            return
        try:
            action(self._client, self.ref.run_id)
        except Exception as exc:  # noqa: BLE001 — a tracking failure must not lose the run
            self.warnings.append(_failed(self.ref.tracking_uri, what, exc))
            self._client = None


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_CHARS]


def _failed(uri: str, what: str, exc: BaseException) -> str:
    cause = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return (
        f"MLflow tracking stopped: could not {what} at {uri} ({cause}). The run itself goes on "
        f"and is saved as usual; check that the tracking server is up and reachable, or "
        f"drop --track / set train.tracking: none."
    )
