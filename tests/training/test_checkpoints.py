"""checkpoints/state.json: what a resumed run continues from, typed at the file boundary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.errors import RunError
from dltrain.runs import RunFolder
from dltrain.training.checkpoints import (
    CheckpointState,
    EpochCheckpoint,
    ResumableEarlyStopping,
    StopperState,
    load_state,
    settle_best,
)
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


def strict_json(path: Path) -> Any:
    """Parse a file as JSON proper: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_diverged_epoch_is_never_checkpointed(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    kernel = model.layers[0].kernel
    checkpoint = EpochCheckpoint(tmp_path, "val_loss", "auto", stopper=None)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    kernel.assign(np.full((2, 1), np.nan, dtype="float32"))  # weights diverged, loss not yet
    checkpoint.on_epoch_end(1, {"loss": 0.9, "val_loss": 0.5})
    kernel.assign(np.zeros((2, 1), dtype="float32"))
    checkpoint.on_epoch_end(2, {"loss": float("inf"), "val_loss": 0.1})  # the loss diverged
    files = RunFolder(tmp_path)
    state = load_state(tmp_path)
    assert state is not None and state.epoch == 1 and state.best_value == 1.0
    assert sorted(p.name for p in files.checkpoints.glob("*.keras")) == [
        "best.keras",
        "epoch-0001.keras",
    ]
    strict_json(files.state)


def test_a_non_finite_monitor_is_never_the_best_and_state_json_stays_json(
    tmp_path: Path,
) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopper = ResumableEarlyStopping(monitor="val_loss", patience=5)
    stopper.set_model(model)
    stopper.on_train_begin()
    stopper.on_epoch_end(0, {"val_loss": float("nan")})
    assert stopper.best is None
    stopper.on_epoch_end(1, {"val_loss": 2.0})
    assert stopper.best == 2.0 and stopper.best_epoch == 1
    state = CheckpointState(
        epoch=2,
        checkpoint="epoch-0002.keras",
        monitor="val_loss",
        best_value=float("nan"),
        best_epoch=None,
        early_stopping=StopperState(best=float("inf"), best_epoch=0, wait=1),
        reduce_on_plateau=PlateauState(factor=1.0, best=float("nan"), wait=0, cooldown=0),
    )
    document = json.loads(json.dumps(state.to_json(), allow_nan=False))
    assert document["best_value"] is None and document["early_stopping"]["best"] is None
    # a state written before this rule, NaN and all, reads back without the NaN
    legacy = CheckpointState.from_json({**WRITTEN, "best_value": float("nan")}, Path("s.json"))
    assert legacy.best_value is None


def test_settle_best_puts_right_a_best_checkpoint_a_crash_left_behind(tmp_path: Path) -> None:
    files = RunFolder(tmp_path)
    files.checkpoints.mkdir()
    files.checkpoint(3).write_bytes(b"epoch 3")
    files.best_checkpoint.write_bytes(b"epoch 1")
    # state.json names epoch 3 best; the crash came before best.keras was replaced
    state = CheckpointState.from_json(
        {**WRITTEN, "epoch": 3, "best_epoch": 3, "checkpoint": "epoch-0003.keras"}, Path("s")
    )
    settle_best(tmp_path, state)
    assert files.best_checkpoint.read_bytes() == b"epoch 3"
    # a best epoch before the last is in best.keras already: left alone
    files.best_checkpoint.write_bytes(b"epoch 2")
    settle_best(tmp_path, CheckpointState.from_json(WRITTEN, Path("s")))
    assert files.best_checkpoint.read_bytes() == b"epoch 2"
