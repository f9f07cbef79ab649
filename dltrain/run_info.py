"""A run's record: what ``run.json`` holds, read and written in one place (as manifest.py is the
prepared data's contract).

``dltrain train`` writes it before training starts (status ``running``), notes each resume, and
closes it as ``completed``, ``interrupted`` or ``diverged``; ``dltrain tune`` marks its trials in
it; ``runs``, ``evaluate``, ``predict`` and ``export`` read it. Every consumer reads typed fields
of :class:`RunInfo`; JSON exists only in :meth:`RunInfo.from_json` and :meth:`RunInfo.to_json`,
which ``RunFolder.read_info`` and ``RunFolder.write_info`` (runs.py) call. Light: no TensorFlow.

Unlike the manifest, the record is tolerant: every field may be missing (a run cut short, or one
written by an older dltrain), and keys this version does not know are kept and written back, so
resuming an older run loses nothing. Only the fields written are written back: a field never set
stays out of the file rather than appearing as ``null``.

Example:
    >>> info = RunFolder(Path("runs/mnist/20260101-120000-ab12")).read_info()
    >>> info.status is RunStatus.COMPLETED, info.best.monitor
    (True, 'val_accuracy')
"""

from __future__ import annotations

import os
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from dltrain import processes
from dltrain.errors import RunError


class RunStatus(StrEnum):
    """Where a run's training stands."""

    RUNNING = "running"  # training now (run.json's owner says which process)
    INTERRUPTED = "interrupted"  # Ctrl-C; resumable
    DIVERGED = "diverged"  # the loss became NaN or infinite
    COMPLETED = "completed"  # the model is saved
    # Never written: how a run marked running reads once its owner is gone (kill -9, a crash,
    # a lost machine). The checkpoint says how far it got; it is resumable.
    KILLED = "killed"


class StopReason(StrEnum):
    """Why training ended before or at its last epoch."""

    EPOCHS = "epochs"
    EARLY_STOPPING = "early_stopping"
    TIME_BUDGET = "time_budget"


class _Part(BaseModel):
    # extra="allow": keys from another dltrain version survive a resume's rewrite.
    # validate_assignment: a field set during training is checked as one read from the file.
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def to_json(self) -> dict[str, JsonValue]:
        """The part as JSON: the fields set, read, or kept from another version."""
        document: dict[str, JsonValue] = self.model_dump(mode="json", exclude_unset=True)
        return document


class TrialMarker(_Part):
    """The ``tune`` entry: which study and trial trained this run, with which parameters."""

    study: str | None = None
    trial: int | None = None
    params: dict[str, JsonValue] = {}  # recipe path → the value the trial drew


class DataRef(_Part):
    """The prepared data the run trained on."""

    folder: str
    fingerprint: str  # the source's: a rebuilt dataset with another source is not this run's


class WorkerTask(_Part):
    type: str  # "worker" or "chief"
    index: int


class Distribution(_Part):
    """The ``TF_CONFIG`` cluster the run trained across (absent or null on one machine)."""

    strategy: str
    num_workers: int
    task: WorkerTask
    weights_sha256: str | None = None  # the same on every worker after a synchronous run


class InputRecord(_Part):
    """How training read its data (data/streaming.py): in memory or streamed from the shards.

    Attributes:
        path: ``memory`` or ``stream``.
        reason: why (the recipe's ``train.input``, or ``auto``'s size rule).
        shard_policy: how the workers of a cluster shared the training split: ``none`` (one
            process), ``file`` (each its own shard files), ``data`` (each all of it, keeping its
            share of every batch).
        train_shards: the training shard files this process read.
        worker_shards: under ``file``, every worker's training shard files, by worker index.
        validation_policy: how they shared the validation split: ``none``, ``file``, ``data``
            as above, or ``row`` (fewer files than workers: each reads them all and keeps rows
            i, i+n, …); the metrics are summed over every worker's rows either way.
        validation_shards: streamed, the validation shard files this process read.
        validation_cached: streamed, whether the validation batches stayed in memory after
            the first epoch (shards of at most ``CACHE_MAX_SHARD_BYTES``, data/streaming.py).
        worker_validation_shards: streamed under ``TF_CONFIG``, every worker's validation shard
            files, by worker index.
    """

    path: str
    reason: str
    shard_policy: str = "none"
    train_shards: list[str] = []
    worker_shards: list[list[str]] | None = None
    validation_policy: str = "none"
    validation_shards: list[str] = []
    validation_cached: bool = False
    worker_validation_shards: list[list[str]] | None = None


class RunOwner(_Part):
    """The process training the run (dltrain/processes.py), so a run marked running whose
    process is gone reads as killed, and no second process takes up a run still training."""

    host: str
    pid: int
    boot: str | None = None  # the machine's boot id: a reboot since means the process is gone
    started: str | None = None  # the process's start time, which tells a reused pid apart

    def is_alive(self) -> bool | None:
        """Whether the process still runs: None when it ran on another machine (no telling)."""
        return processes.is_alive(self.host, self.pid, self.boot, self.started)


def this_process() -> RunOwner:
    """The record of the process calling it, as the owner of the run it trains."""
    pid = os.getpid()
    return RunOwner(
        host=socket.gethostname(),
        pid=pid,
        boot=processes.boot_id(),
        started=processes.process_started(pid),
    )


class Resume(_Part):
    at_epoch: int  # epochs done when training was taken up again
    when: str  # ISO 8601, UTC


class BestEpoch(_Part):
    """The best epoch by the early-stopping monitor: the weights the saved model holds."""

    monitor: str
    epoch: int | None  # 1-based; None when the monitor was never a finite number
    value: float | None


class MlflowRef(_Part):
    """The MLflow run train logged to (``train.tracking: mlflow``); evaluate logs there too."""

    tracking_uri: str
    run_id: str
    experiment_id: str | None = None


class CalibrationInfo(_Part):
    """The temperature scaling fitted after training (``train.calibration: temperature``)."""

    method: str  # temperature
    temperature: float  # T: the saved model's probabilities are softmax(log(p) / T)
    fitted_on: str  # the split T was fitted on (validation)
    num_examples: int
    log_loss_before: float  # on that split, at T = 1
    log_loss_after: float  # at T


class RunEnvironment(_Part):
    """Versions, seed and device, so a run says how to reproduce it."""

    seed: int
    deterministic: bool
    device: str
    distribution: Distribution | None  # None on one machine
    versions: dict[str, str]  # dltrain, tensorflow, keras, numpy, python


class RunInfo(_Part):
    """Everything run.json says, in the order it is written."""

    recipe: str | None = None  # the recipe's name
    recipe_file: str | None = None
    status: RunStatus | None = None
    owner: RunOwner | None = None  # the process that last trained the run
    started: str | None = None  # ISO 8601, UTC
    tune: TrialMarker | None = None  # set: a `dltrain tune` trial, not a user's run
    data: DataRef | None = None
    seed: int | None = None
    deterministic: bool | None = None
    device: str | None = None
    distribution: Distribution | None = None
    versions: dict[str, str] = {}
    resumed: list[Resume] = []
    finished: str | None = None
    seconds: float | None = None  # fitting time over every session of the run
    epochs_run: int | None = None
    stopped_by: StopReason | None = None
    parameters: int | None = None
    best: BestEpoch | None = None  # None: no early stopping watched the run
    final: dict[str, float] = {}  # the last epoch's logs
    # SHA-256 of the saved model's weights in order (training/multiworker.py weights_digest):
    # `dltrain verify` checks model.keras against it and a rerun
    weights_sha256: str | None = None
    # What the user should know about how training went (the best epoch was the last, no
    # better than the trivial baseline on the validation split, …), one sentence each with its
    # fix; shown by train and readable by later commands.
    warnings: list[str] = []
    # What the model answers, where a run says so itself (dltrain train leaves it to the
    # manifest and the model family; see evaluation/run_model.py).
    task: str | None = None
    mlflow: MlflowRef | None = None  # set: train logged to this MLflow run
    input: InputRecord | None = None  # how training read its data; absent in older runs
    calibration: CalibrationInfo | None = None  # set: the saved model holds a temperature

    @property
    def current_status(self) -> RunStatus | None:
        """The status, where a run marked running whose process is gone reads as killed.

        Returns:
            ``status``; ``KILLED`` for a run still marked running when its owner no longer runs
            on this machine (on another machine, or with no owner recorded, there is no telling,
            and it stays ``RUNNING``).
        """
        owner = self.owner
        if self.status is RunStatus.RUNNING and owner is not None and owner.is_alive() is False:
            return RunStatus.KILLED
        return self.status

    @property
    def is_tune_trial(self) -> bool:
        """Whether ``dltrain tune`` trained this run."""
        return self.tune is not None

    @property
    def data_fingerprint(self) -> str | None:
        """The fingerprint of the data the run trained on; None when run.json does not say."""
        return self.data.fingerprint if self.data is not None else None

    def take_environment(self, environment: RunEnvironment) -> None:
        """Record where and with what this session of the run trains."""
        for name in RunEnvironment.model_fields:
            setattr(self, name, getattr(environment, name))

    @classmethod
    def from_json(cls, document: Any, source: Path) -> RunInfo:
        """Check a parsed run.json.

        Args:
            document: the parsed JSON.
            source: the file it came from, for the message.

        Raises:
            RunError: it is not a run record (not an object, or a field of the wrong kind).
        """
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'the document'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise RunError(
                f"{source} is not a run record dltrain can read ({problems}). Every run folder "
                f"written by `dltrain train` has a run.json object with fields such as status, "
                f"data and best; train the run again, or fix the file by hand."
            ) from None
