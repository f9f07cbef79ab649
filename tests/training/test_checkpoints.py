"""checkpoints/state.json: what a resumed run continues from, typed at the file boundary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dltrain.errors import RunError
from dltrain.runs import RunFolder
from dltrain.training.checkpoints import CheckpointState, StopperState, load_state
from dltrain.training.schedules import PlateauState

# state.json as EpochCheckpoint has always written it
WRITTEN = {
    "epoch": 3,
    "checkpoint": "epoch-0003.keras",
    "monitor": "val_accuracy",
    "best_value": 0.9,
    "best_epoch": 2,
    "early_stopping": {"best": 0.9, "best_epoch": 1, "wait": 1},
}


def test_the_state_reads_typed_and_writes_back_as_it_was(tmp_path: Path) -> None:
    files = RunFolder(tmp_path)
    files.checkpoints.mkdir()
    files.state.write_text(json.dumps(WRITTEN))
    state = load_state(tmp_path)
    assert state is not None and state.epoch == 3 and state.checkpoint == "epoch-0003.keras"
    assert state.early_stopping == StopperState(best=0.9, best_epoch=1, wait=1)
    assert state.to_json() == WRITTEN


def test_a_run_without_early_stopping_has_no_stopper_state() -> None:
    state = CheckpointState.from_json({**WRITTEN, "early_stopping": None}, Path("state.json"))
    assert state.early_stopping is None and state.to_json()["early_stopping"] is None


def test_no_state_yet_is_none_and_a_broken_one_a_clear_error(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None
    files = RunFolder(tmp_path)
    files.checkpoints.mkdir()
    files.state.write_text("{}")
    with pytest.raises(RunError, match="not a checkpoint state"):
        load_state(tmp_path)
    files.state.write_text("{not json")
    with pytest.raises(RunError, match="unreadable"):
        load_state(tmp_path)


def test_reduce_on_plateau_state_round_trips() -> None:
    plateau = {"factor": 0.25, "best": 1.5, "wait": 1, "cooldown": 2}
    state = CheckpointState.from_json({**WRITTEN, "reduce_on_plateau": plateau}, Path("s.json"))
    assert state.reduce_on_plateau == PlateauState(factor=0.25, best=1.5, wait=1, cooldown=2)
    assert state.to_json() == {**WRITTEN, "reduce_on_plateau": plateau}
    assert CheckpointState.from_json(WRITTEN, Path("s.json")).reduce_on_plateau is None
