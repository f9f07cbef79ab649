"""What one trial was, in recipe terms: the row of the live table, leaderboard, CSV and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from dltrain.tuning.space import Params, SearchSpace

INTERRUPTED_REASON = "its tuner stopped before it finished (killed); it was queued to run again"


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # complete | pruned | fail | running | waiting
    value: float | None
    params: Params = field(default_factory=dict)
    seconds: float | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    pruned_at_epoch: int | None = None
    run_dir: str | None = None
    reason: str | None = None  # why it failed
    worker: str | None = None  # host:pid of the tuner that ran it
    retry_of: int | None = None  # the trial it repeats, cut short before
    interrupted: bool = False  # cut short by Ctrl-C or a dead tuner; queued to run again

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def trial_record(trial: FrozenTrial, space: SearchSpace) -> TrialRecord:
    """A study's trial as dltrain reports it."""
    attrs = trial.user_attrs
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 2)
    reason = attrs.get("fail_reason")
    # A trial failed without a reason was failed by a tuner that found its own tuner dead.
    interrupted = trial.state is TrialState.FAIL and (reason is None or attrs.get("interrupted"))
    if trial.state is TrialState.FAIL and reason is None:
        reason = INTERRUPTED_REASON
    worker = attrs.get("worker")
    return TrialRecord(
        number=trial.number,
        state=trial.state.name.lower(),
        value=trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
        params=space.decode_all(trial.params),
        seconds=seconds,
        epochs_run=attrs.get("epochs_run"),
        best_epoch=attrs.get("best_epoch"),
        pruned_at_epoch=attrs.get("pruned_at_epoch"),
        run_dir=attrs.get("run_dir"),
        reason=reason,
        worker=f"{worker['host']}:{worker['pid']}" if isinstance(worker, dict) else None,
        retry_of=attrs.get("retry_of"),
        interrupted=bool(interrupted),
    )
