"""Finding trials whose tuner died: on this machine by process id, elsewhere by heartbeat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

from dltrain.tuning.recovery import recover_stale_trials, this_worker, worker_is_dead
from dltrain.tuning.storage import open_storage
from dltrain.tuning.study import budget_used


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def study_in(tmp_path: Path) -> tuple[optuna.Study, str]:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    return study, url


def running_trial(study: optuna.Study, worker: dict[str, object]) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("model.dropout", 0.0, 0.5)
    trial.set_user_attr("worker", worker)
    study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    return trial


def test_a_dead_tuner_on_this_machine_is_found_at_once_and_its_trial_queued_again(
    tmp_path: Path,
) -> None:
    study, _ = study_in(tmp_path)
    alive = running_trial(study, this_worker())
    dead = running_trial(study, {**this_worker(), "pid": dead_pid()})
    assert worker_is_dead({**this_worker(), "pid": dead_pid()})
    assert not worker_is_dead(this_worker())
    assert not worker_is_dead({"host": "another-machine", "pid": dead_pid()})  # cannot tell

    assert recover_stale_trials(study) == [dead.number]
    states = {t.number: t.state for t in study.trials}
    assert states[alive.number] is TrialState.RUNNING
    assert states[dead.number] is TrialState.FAIL
    (retry,) = [t for t in study.trials if t.user_attrs.get("retry_of") == dead.number]
    assert retry.state is TrialState.WAITING
    assert retry.system_attrs["fixed_params"] == study.trials[dead.number].params
    # The cut trial does not use up the budget; its retry does.
    assert budget_used(study) == 2
    assert recover_stale_trials(study) == []  # found once, queued once


def test_a_tuner_elsewhere_is_taken_for_dead_when_its_heartbeat_stops(tmp_path: Path) -> None:
    study, url = study_in(tmp_path)
    remote = running_trial(study, {"host": "another-machine", "pid": os.getpid()})
    assert recover_stale_trials(study) == []  # its heartbeat is fresh
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:  # two minutes of silence, past the grace period
        connection.execute(
            sqlalchemy.text(
                "UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-120 seconds')"
            )
        )
    assert recover_stale_trials(study) == [remote.number]
    assert study.trials[remote.number].state is TrialState.FAIL
    assert [t.user_attrs.get("retry_of") for t in study.trials] == [None, remote.number]
