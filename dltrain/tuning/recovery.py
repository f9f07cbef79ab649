"""The workers of a study and their trials: who runs a trial, and recovering a dead one's.

Each worker process is identified in its trials' user attributes, and records heartbeats while
a trial runs, so a trial whose worker died is found, marked failed and queued again with the
same parameters.
"""

from __future__ import annotations

import os
import socket
from typing import Any, TypedDict

import optuna
from optuna.trial import FrozenTrial, TrialState

from dltrain.processes import boot_id, is_alive, process_started

HEARTBEAT_SECONDS = 10
# A trial whose worker has not beaten for this long is taken for dead (a remote machine lost).
# Dead workers on this machine are found at once by their process id instead.
GRACE_SECONDS = 60


class Worker(TypedDict):
    """How a tuner process names itself in the trials it runs (an Optuna user attribute)."""

    host: str
    pid: int
    boot: str | None  # the machine's boot id: a reboot since means the process is gone
    started: str | None  # the process's start time, which tells a reused pid apart


def this_worker() -> Worker:
    """How this process names itself in the trials it runs."""
    pid = os.getpid()
    return Worker(host=socket.gethostname(), pid=pid, boot=boot_id(), started=process_started(pid))


def worker_is_dead(worker: Any) -> bool:
    """Whether a worker recorded on this machine is certainly gone (others: unknown → False)."""
    if not isinstance(worker, dict) or not isinstance(worker.get("pid"), int):
        return False
    host = worker.get("host")
    alive = is_alive(str(host), worker["pid"], worker.get("boot"), worker.get("started"))
    return alive is False


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a new trial with the parameters of one that was cut short."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


class StaleRequeue:
    """Optuna's stale-trial callback: queue the trial again (called once, by whoever failed it)."""

    def __init__(self) -> None:
        self.recovered: list[int] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        requeue(study, trial)
        self.recovered.append(trial.number)


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail and queue again the running trials whose worker is gone; return their numbers.

    Workers on this machine are checked by process id, so rerunning a killed ``dltrain tune``
    resumes at once; workers elsewhere are taken for dead when their heartbeat is older than
    ``GRACE_SECONDS``. Of several tuners finding the same trial, only the one whose update
    succeeds queues it again.
    """
    recovered: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not worker_is_dead(trial.user_attrs.get("worker")):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another tuner got there first
        requeue(study, trial)
        recovered.append(trial.number)
    storage = study._storage  # Optuna's heartbeat API lives on the storage
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    callback = getter() if getter is not None else None
    optuna.storages.fail_stale_trials(study)
    if isinstance(callback, StaleRequeue):
        recovered += callback.recovered
        callback.recovered.clear()
    return recovered
