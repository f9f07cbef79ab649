"""What the tuner and a trial process tell each other: the trial's spec, its events, its outcome.

The tuner (tuning/runner.py) writes a trial's spec to ``trial.json`` and starts
``python -m dltrain.tuning.trial`` on it; the trial prints one JSON line per epoch on stdout and
writes its outcome to the spec's ``result`` file. Both sides are the same dltrain, so these are
``TypedDict``s: the documents stay plain JSON on disk and in tests, and mypy checks every key.
Light: no TensorFlow, no Optuna.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from dltrain.tuning.space import Params


class PrunerConfig(TypedDict):
    """What a trial process needs to build the tuner's pruner (tuning/study.py ``make_pruner``)."""

    name: str  # a PrunerName value
    min_epochs: int
    max_epochs: int
    reduction_factor: int


class TrialSpec(TypedDict):
    """trial.json: everything a trial process needs to train one trial and report it."""

    recipe: str  # the study's base recipe; the overrides go on top
    overrides: list[tuple[str, Any]]  # (recipe path, value), in order; JSON reads them as lists
    params: Params  # the values drawn, which the trial is known by
    workdir: str
    study: str
    trial_id: int  # the storage's id, which Optuna's trial API takes
    trial_number: int
    epochs: int | None  # the most the trial trains; it is never pruned at the last one
    objective: str
    direction: str  # maximize | minimize
    pruner: PrunerConfig
    parent_pid: int  # the tuner: the trial stops when it dies
    result: str  # where the outcome goes
    log: str  # where the trial's stderr goes
    # train.tracking: mlflow: the study's MLflow run (run_info.MlflowRef as JSON), whose child
    # run the trial logs to
    mlflow_parent: NotRequired[dict[str, Any]]


TrialState = Literal["complete", "pruned", "fail", "interrupted"]


class TrialOutcome(TypedDict):
    """result.json: how a trial ended, and what the study records of it."""

    state: TrialState
    value: NotRequired[float | None]  # complete: the best epoch's; pruned: the last epoch's
    best_epoch: NotRequired[int | None]
    pruned_at_epoch: NotRequired[int]
    kind: NotRequired[str]  # why it failed, as a word: diverged, out_of_memory, timeout, …
    reason: NotRequired[str]  # … and as a sentence
    run_dir: NotRequired[str | None]
    epochs_run: NotRequired[int]
    seconds: NotRequired[float]


class TrainedTrial(TypedDict):
    """What training a trial returns when it ends without an error."""

    run_dir: str | None  # None: a stand-in trainer that writes no run
    epochs_run: int


class EpochEvent(TypedDict):
    """One line on a trial's stdout after each epoch, for the tuner's live table."""

    event: Literal["epoch"]
    epoch: int  # 1-based
    value: float  # the objective
