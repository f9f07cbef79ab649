"""run.json's contract (dltrain/run_info.py): typed, tolerant of older runs, lossless on rewrite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dltrain.errors import RunError
from dltrain.run_info import (
    BestEpoch,
    RunInfo,
    RunStatus,
    StopReason,
    TrialMarker,
    this_process,
)
from dltrain.runs import RunFolder

# run.json as dltrain train wrote it before the record was typed (keys in their written order).
COMPLETED = {
    "recipe": "mnist",
    "recipe_file": "recipes/mnist.yaml",
    "status": "completed",
    "started": "2026-01-01T12:00:00+00:00",
    "data": {"folder": "data/mnist", "fingerprint": "abc"},
    "seed": 7,
    "deterministic": False,
    "device": "CPU (mixed precision off)",
    "distribution": None,
    "versions": {"dltrain": "0.1.0", "tensorflow": "2.21.0"},
    "finished": "2026-01-01T12:05:00+00:00",
    "seconds": 300.5,
    "epochs_run": 3,
    "stopped_by": "early_stopping",
    "parameters": 1234,
    "best": {"monitor": "val_accuracy", "epoch": 2, "value": 0.97},
    "final": {"loss": 0.1, "val_accuracy": 0.96},
}


def test_a_completed_run_reads_as_typed_fields_and_writes_back_unchanged(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.info.write_text(json.dumps(COMPLETED))
    info = run.read_info()
    assert info.status is RunStatus.COMPLETED and info.stopped_by is StopReason.EARLY_STOPPING
    assert info.best == BestEpoch(monitor="val_accuracy", epoch=2, value=0.97)
    assert info.data_fingerprint == "abc" and not info.is_tune_trial
    run.write_info(info)
    assert json.loads(run.info.read_text()) == COMPLETED
    assert list(json.loads(run.info.read_text())) == list(COMPLETED)  # the same order too


def test_an_old_or_cut_short_record_reads_with_what_it_has(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.info.write_text(json.dumps({"status": "interrupted", "epochs_run": 0}))
    info = run.read_info()
    assert info.status is RunStatus.INTERRUPTED and info.epochs_run == 0
    assert info.best is None and info.data is None and info.data_fingerprint is None
    assert info.resumed == [] and info.final == {}
    # what was never set stays out of the file rather than turning into nulls
    run.write_info(info)
    assert json.loads(run.info.read_text()) == {"status": "interrupted", "epochs_run": 0}


def test_keys_another_version_wrote_survive_a_rewrite(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.info.write_text(json.dumps({"status": "running", "gpu_hours": 1.5, "tune": {"trial": 3}}))
    info = run.read_info()
    assert info.is_tune_trial and info.tune == TrialMarker(trial=3)
    info.status = RunStatus.COMPLETED
    run.write_info(info)
    assert json.loads(run.info.read_text()) == {
        "status": "completed",
        "tune": {"trial": 3},
        "gpu_hours": 1.5,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "missing or unreadable"),
        ("[1, 2]", "not a run record"),
        (json.dumps({"epochs_run": "many"}), "epochs_run"),
    ],
)
def test_an_unreadable_record_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    run = RunFolder(tmp_path)
    run.info.write_text(text)
    with pytest.raises(RunError, match=expected):
        run.read_info()
    assert not run.is_tune_trial


def test_a_missing_record_says_so(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="missing or unreadable"):
        RunFolder(tmp_path).read_info()


def test_fields_set_during_training_are_checked() -> None:
    info = RunInfo()
    with pytest.raises(ValueError):
        info.epochs_run = "many"  # type: ignore[assignment]


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_marked_running_by_a_process_that_is_gone_reads_as_killed() -> None:
    me = this_process()
    assert me.is_alive() is True
    running = RunInfo(status=RunStatus.RUNNING, owner=me)
    assert running.current_status is RunStatus.RUNNING
    gone = [
        me.model_copy(update={"pid": dead_pid()}),
        me.model_copy(update={"started": "1"}),  # the pid now belongs to a later process
    ]
    if me.boot is not None:
        gone.append(me.model_copy(update={"boot": "another boot"}))  # the machine rebooted
    for owner in gone:
        assert owner.is_alive() is False, owner
        assert RunInfo(status=RunStatus.RUNNING, owner=owner).current_status is RunStatus.KILLED
    # another machine's process: no telling, so it stays running
    elsewhere = me.model_copy(update={"host": "not-" + me.host})
    assert elsewhere.is_alive() is None
    assert RunInfo(status=RunStatus.RUNNING, owner=elsewhere).current_status is RunStatus.RUNNING
    # a finished run's owner is gone too, and that changes nothing
    done = RunInfo(status=RunStatus.COMPLETED, owner=gone[0])
    assert done.current_status is RunStatus.COMPLETED
    assert RunInfo(status=RunStatus.RUNNING).current_status is RunStatus.RUNNING  # no owner


def test_the_owner_round_trips_through_run_json(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.write_info(RunInfo(status=RunStatus.RUNNING, owner=this_process()))
    document = json.loads(run.info.read_text())
    assert document["owner"]["pid"] == os.getpid()
    assert run.read_info().owner == this_process()
