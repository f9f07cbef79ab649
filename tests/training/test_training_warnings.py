"""The warnings train gives about how training went: the best epoch was the last one."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dltrain.run_info import BestEpoch, StopReason
from dltrain.training.finish import training_warnings
from dltrain.training.record import Outcome
from tests.conftest import RecipeWriter, invoke


def outcome(epochs: int, best: int | None, stopped_by: StopReason = StopReason.EPOCHS) -> Outcome:
    watched = None if best is None else BestEpoch(monitor="val_loss", epoch=best, value=0.25)
    return Outcome(epochs, {}, watched, stopped_by)


PLAN: Any = SimpleNamespace(spec=SimpleNamespace(early_stopping=SimpleNamespace(patience=4)))


def test_the_best_epoch_being_the_last_says_to_raise_epochs_and_how() -> None:
    (warning,) = training_warnings(PLAN, outcome(epochs=5, best=5))
    assert "The best val_loss (0.25) came at the last epoch (5 of 5)" in warning
    assert "--epochs 10" in warning and "patience 4" in warning and "train.epochs" in warning


@pytest.mark.parametrize(
    ("case", "result"),
    [
        ("best earlier", outcome(epochs=5, best=3)),
        ("one or two epochs asked for", outcome(epochs=2, best=2)),
        ("stopped by the time budget", outcome(5, 5, StopReason.TIME_BUDGET)),
        ("no early stopping to judge by", outcome(epochs=5, best=None)),
    ],
)
def test_no_warning_where_the_last_epoch_says_nothing(case: str, result: Outcome) -> None:
    assert training_warnings(PLAN, result) == [], case


def test_train_says_it_on_stderr_in_json_and_in_run_json(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small learning rate on easy images: val_loss falls every one of the three epochs.
    write_recipe(idx_folder, train={"epochs": 3, "optimizer": {"learning_rate": 0.001}})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    code, out, err = invoke("train", "--json")
    assert code == 0, err
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    with (run / "history.csv").open() as handle:
        losses = [float(row["val_loss"]) for row in csv.DictReader(handle)]
    assert losses.index(min(losses)) == 2, losses  # the case under test
    (warning,) = json.loads(out)["warnings"]
    assert "came at the last epoch (3 of 3)" in warning
    assert json.loads((run / "run.json").read_text())["warnings"] == [warning]
    assert "Warning:" in err and "came at the last epoch" in " ".join(err.split())
    code, out, err = invoke("evaluate", "--json")  # evaluate repeats what training said
    assert code == 0, err
    assert f"training: {warning}" in json.loads(out)["warnings"]
    # Two epochs asked for: a quick look, not a run that wants more.
    code, out, err = invoke("train", "--json", "--epochs", "2")
    assert code == 0, err
    assert json.loads(out)["warnings"] == []
