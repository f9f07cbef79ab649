"""The trial process's reporter: what it tells the study, and when it stops training."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from dltrain.errors import ObjectiveNotLogged
from dltrain.tuning.trial import EpochReporter


class StubTrial:
    """Records reports; the pruner's answer is set by the test."""

    def __init__(self, prune: bool) -> None:
        self.prune = prune
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


def reporter(trial: Any, direction: str = "maximize", epochs: int | None = 3) -> EpochReporter:
    return EpochReporter(trial, "val_accuracy", direction, io.StringIO(), epochs)


def test_a_complete_trial_scores_its_best_epoch_in_the_objectives_direction() -> None:
    trial = StubTrial(prune=False)
    up = reporter(trial)
    for epoch, value in enumerate([0.5, 0.8, 0.7], start=1):
        assert up.epoch_end(epoch, {"val_accuracy": value, "loss": 1.0}) is False
    assert up.outcome() == {"state": "complete", "value": 0.8, "best_epoch": 2}
    assert trial.reports == [(0.5, 1), (0.8, 2), (0.7, 3)]  # steps are 1-based epochs
    down = EpochReporter(StubTrial(False), "val_loss", "minimize", io.StringIO(), 3)
    for epoch, value in enumerate([0.9, 0.4, 0.6], start=1):
        down.epoch_end(epoch, {"val_loss": value})
    assert down.outcome()["value"] == 0.4


def test_the_pruner_stops_a_trial_but_never_at_its_last_epoch() -> None:
    pruned = reporter(StubTrial(prune=True))
    assert pruned.epoch_end(1, {"val_accuracy": 0.3}) is True
    assert pruned.outcome() == {"state": "pruned", "value": 0.3, "pruned_at_epoch": 1}
    last = reporter(StubTrial(prune=True), epochs=1)  # a Hyperband rung may fall on the last
    assert last.epoch_end(1, {"val_accuracy": 0.6}) is False
    assert last.outcome()["state"] == "complete"


def test_progress_lines_go_to_the_tuner_and_nan_is_not_reported() -> None:
    trial = StubTrial(prune=False)
    events = io.StringIO()
    up = EpochReporter(trial, "val_accuracy", "maximize", events, 3)
    up.epoch_end(1, {"val_accuracy": float("nan")})
    assert trial.reports == []
    assert json.loads(events.getvalue().splitlines()[0])["event"] == "epoch"
    assert up.outcome()["state"] == "fail"  # never a finite value: nothing to score


def test_an_objective_training_does_not_log_names_what_it_does_log() -> None:
    up = EpochReporter(StubTrial(prune=False), "val_f1", "maximize", io.StringIO())
    with pytest.raises(ObjectiveNotLogged) as caught:
        up.epoch_end(1, {"loss": 0.5, "val_loss": 0.6, "epoch_seconds": 2.0})
    message = caught.value.message
    assert "'val_f1'" in message and "loss, val_loss" in message
    assert "epoch_seconds" not in message
