"""The tuner: prepare once, open the study, and run trials in their own processes until done.

Each of ``jobs`` worker threads loops: ask the study for a trial (recovering trials whose
worker died first), draw its parameters, start ``python -m dltrain.tuning.trial`` on them, keep
its heartbeat while it trains, and record its outcome: complete, pruned, or failed with the
reason. The loop ends when the study holds ``num_trials`` trials (counted across every tuner
sharing the storage), when the time budget is spent, after too many failures in a row, or on
Ctrl-C, which stops the running trials and queues them to run again on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from dltrain.atomic import write_json_atomic
from dltrain.credentials import mask_credentials
from dltrain.errors import DltrainError, RecipeError
from dltrain.faults import crash_point
from dltrain.recipe import load_recipe
from dltrain.recipe.durations import format_duration
from dltrain.tuning.plan import StudyStart, TunePlan
from dltrain.tuning.process import (
    INTERRUPTED_BY_USER,
    discard,
    expire,
    explain_exit,
    hand,
    send_signal,
    spawn_standby,
    trial_env,
)
from dltrain.tuning.protocol import TrialOutcome, TrialSpec
from dltrain.tuning.records import TrialRecord, trial_record
from dltrain.tuning.recovery import HEARTBEAT_SECONDS, recover_stale_trials, requeue, this_worker
from dltrain.tuning.space import Params, ordered_overrides, refusal_reason
from dltrain.tuning.storage import silence_optuna
from dltrain.tuning.study import budget_used, pruner_config

# How a trial process is started; the tests put a TensorFlow-free stand-in here.
TRIAL_COMMAND: list[str] = [sys.executable, "-m", "dltrain.tuning.trial"]


# --- events for the live display ----------------------------------------------------------------


@dataclass(frozen=True)
class TrialStarted:
    number: int
    params: Params
    retry_of: int | None


@dataclass(frozen=True)
class TrialProgress:
    number: int
    epoch: int
    epochs: int
    value: float


@dataclass(frozen=True)
class TrialFinished:
    record: TrialRecord


TuneEvent = TrialStarted | TrialProgress | TrialFinished
EventHandler = Callable[[TuneEvent], None]


@dataclass
class TuneOutcome:
    """What this session did (the study itself holds every trial of every session)."""

    study: optuna.Study
    trials_run: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    seconds: float = 0.0
    stop_reason: str = ""
    interrupted: bool = False


def run_trials(plan: TunePlan, start: StudyStart, on_event: EventHandler) -> TuneOutcome:
    """Run trials until the study is done; Ctrl-C stops them and queues them again.

    Args:
        plan: the search.
        start: the opened study (``start_study``).
        on_event: called from worker threads with each trial's start, epochs and end.

    Raises:
        RecipeError: the objective is not a metric training logs (every trial would fail).
    """
    silence_optuna()
    return _Session(plan, start, on_event).run()


class _Session:
    def __init__(self, plan: TunePlan, start: StudyStart, on_event: EventHandler) -> None:
        self.plan = plan
        self.study = start.opened.study
        self.storage = start.opened.storage
        self.on_event = on_event
        self.worker = this_worker()
        self.lock = threading.Lock()
        self.beating: set[int] = set()  # trial ids whose heartbeat this process keeps
        self.processes: dict[int, subprocess.Popen[str]] = {}
        self.stop_reason = ""
        self.interrupting = False
        self.failures_in_a_row = 0
        self.fatal: DltrainError | None = None
        self.error: BaseException | None = None
        self.outcome = TuneOutcome(study=self.study, recovered=list(start.recovered))
        timeout = plan.spec.timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout if timeout else None
        self.heartbeat_stop = threading.Event()
        self.workers_done = threading.Event()
        self.active = 0
        # Per worker, a trial process started ahead of need: it imports TensorFlow while the
        # current trial trains, then waits for its spec, so a trial starts in a second rather than
        # after TensorFlow's start-up. Each trial still gets a process of its own.
        self.standby: dict[int, subprocess.Popen[str] | None] = {}

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> TuneOutcome:
        workers = [
            threading.Thread(target=self._work, args=(i,), name=f"dltrain-tune-{i}", daemon=True)
            for i in range(self.plan.jobs)
        ]
        heartbeat = threading.Thread(target=self._beat, name="dltrain-heartbeat", daemon=True)
        heartbeat.start()
        self.active = len(workers)
        for thread in workers:
            thread.start()
        try:
            self._wait()
        except KeyboardInterrupt:
            self.outcome.interrupted = True
            self._signal_trials(signal.SIGINT)
            try:
                self._wait()
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait for trials to wind down
                self._signal_trials(signal.SIGKILL)
                self._wait()
        finally:
            self.heartbeat_stop.set()
        self.outcome.seconds = time.monotonic() - self.started
        self.outcome.stop_reason = self.stop_reason
        if self.error is not None:
            raise self.error
        if self.fatal is not None:
            raise self.fatal
        return self.outcome

    def _wait(self) -> None:
        # Our own event rather than Thread.join: a join interrupted by Ctrl-C can leave the
        # thread reporting itself finished while it still records its trial.
        while not self.workers_done.wait(0.2):
            pass

    def _work(self, slot: int) -> None:
        try:
            self.standby[slot] = self._spawn(slot)  # warms up while the first trial is drawn
            while True:
                picked = self._next_trial()
                if picked is None:
                    return
                self._run(*picked, slot=slot)
        except BaseException as exc:  # a bug or a lost database: stop the others, report it
            with self.lock:
                self.error = self.error or exc
                self._stop("an error stopped the tuner")
        finally:
            discard(self.standby.pop(slot, None))
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    self.workers_done.set()

    def _stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason

    def _next_trial(self) -> tuple[optuna.Trial, Params] | None:
        with self.lock:
            if self.stop_reason:
                return None
            if self.deadline is not None and time.monotonic() >= self.deadline:
                budget = format_duration(self.deadline - self.started)
                self._stop(f"the time budget ({budget}) is spent")
                return None
            self.outcome.recovered += recover_stale_trials(self.study)
            limit = self.plan.num_trials
            # A trial queued again after a kill counts toward the budget already, so with the
            # budget spent it still runs: its values were never tried to the end.
            queued = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if limit is not None and budget_used(self.study) >= limit and not queued:
                what = (
                    "every grid point is tried"
                    if self.plan.grid_size
                    else (f"the study holds its {limit} trials")
                )
                self._stop(what)
                return None
            trial = self.study.ask()
            trial_id = trial._trial_id  # Optuna's heartbeat API takes the storage's id
            self.storage.record_heartbeat(trial_id)
            self.beating.add(trial_id)
            trial.set_user_attr("worker", self.worker)
            values = self.plan.space.suggest(trial)
            self.outcome.trials_run.append(trial.number)
            return trial, values

    def _beat(self) -> None:
        while not self.heartbeat_stop.wait(HEARTBEAT_SECONDS):
            with self.lock:
                ids = list(self.beating)
            for trial_id in ids:
                with contextlib.suppress(Exception):  # a missed beat is retried next interval
                    self.storage.record_heartbeat(trial_id)

    # --- one trial ------------------------------------------------------------------------------

    def _run(self, trial: optuna.Trial, values: Params, *, slot: int) -> None:
        plan = self.plan
        number = trial.number
        retry_of = trial.user_attrs.get("retry_of")
        self.on_event(TrialStarted(number, values, retry_of))
        overrides = ordered_overrides(values)
        try:
            epochs = load_recipe(plan.files.base_recipe, overrides).recipe.train.epochs
        except RecipeError as exc:  # a combination no single value showed (e.g. two clippings)
            self._finish(
                trial, TrialOutcome(state="fail", kind="invalid", reason=refusal_reason(exc))
            )
            return
        files = plan.files
        files.trial(number).mkdir(parents=True, exist_ok=True)
        spec = TrialSpec(
            recipe=str(files.base_recipe),
            overrides=overrides,
            params=values,
            workdir=str(plan.workdir),
            study=plan.study_name,
            trial_id=trial._trial_id,
            trial_number=number,
            epochs=epochs,
            objective=plan.spec.objective,
            direction=plan.spec.resolved_direction.value,
            pruner=pruner_config(plan.spec, plan.max_epochs),
            parent_pid=os.getpid(),
            result=str(files.trial_result(number)),
            log=str(files.trial_log(number)),
        )
        if plan.mlflow_parent is not None:
            spec["mlflow_parent"] = plan.mlflow_parent.to_json()
        write_json_atomic(files.trial_spec(number), spec)
        crash_point("tune.trial_spec")
        trial.set_user_attr("log", spec["log"])
        self._finish(trial, self._launch(number, slot))

    def _spawn(self, slot: int) -> subprocess.Popen[str]:
        """Start a trial process in standby (``TRIAL_COMMAND``, which tests replace)."""
        env = trial_env(self.plan.storage_url, self.plan.jobs)
        return spawn_standby(TRIAL_COMMAND, self.plan.files, slot, self.plan.workdir, env)

    def _start(self, spec_path: Path, slot: int) -> subprocess.Popen[str]:
        """A process running the trial ``spec_path``: the warm standby, else a fresh one."""
        process = self.standby.pop(slot, None)
        if process is None or process.poll() is not None:
            discard(process)
            process = self._spawn(slot)
        if not hand(process, spec_path):  # it died warming up (its standby log says why)
            discard(process)
            process = self._spawn(slot)
            hand(process, spec_path)  # if this one fails too, the trial fails with its log
        if self._more_trials_ahead():
            self.standby[slot] = self._spawn(slot)
        return process

    def _more_trials_ahead(self) -> bool:
        with self.lock:
            if self.stop_reason:
                return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        limit = self.plan.num_trials
        return limit is None or budget_used(self.study) < limit

    def _launch(self, number: int, slot: int) -> TrialOutcome:
        """Run trial ``number``'s process to its end, relaying its epochs; its outcome."""
        files, timeout = self.plan.files, self.plan.spec.trial_timeout
        process = self._start(files.trial_spec(number), slot)
        with self.lock:
            self.processes[number] = process
            if self.interrupting:
                send_signal(process, signal.SIGINT)
        timed_out = threading.Event()
        timer = threading.Timer(timeout, expire, (process, timed_out)) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        self._relay_epochs(process, number)
        code = process.wait()
        if timer is not None:
            timer.cancel()
        with self.lock:
            self.processes.pop(number, None)
        result_path = files.trial_result(number)
        if result_path.is_file() and not timed_out.is_set():
            try:
                outcome: TrialOutcome = json.loads(result_path.read_text(encoding="utf-8"))
                return outcome
            except (OSError, ValueError):
                pass
        return explain_exit(
            code,
            timed_out=timed_out.is_set(),
            interrupted=self.interrupting,
            trial_timeout=timeout,
            log_path=files.trial_log(number),
            standby_log=files.standby_log(slot),
        )

    def _relay_epochs(self, process: subprocess.Popen[str], number: int) -> None:
        """Pass the epoch lines a trial prints on to the live display, until it exits."""
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                event = json.loads(line)
                if event.get("event") == "epoch":
                    epoch, value = int(event["epoch"]), float(event["value"])
                    self.on_event(TrialProgress(number, epoch, self.plan.max_epochs, value))

    def _finish(self, trial: optuna.Trial, result: TrialOutcome) -> None:
        state = result["state"]
        crash_point("tune.trial_record")
        try:
            frozen = self._record(trial, result)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            # Another tuner took this trial for dead (its heartbeat missed the grace period, e.g.
            # the machine was suspended) and queued it again; keep what the study says.
            (frozen,) = [t for t in self.study.get_trials() if t.number == trial.number]
        with self.lock:
            self.beating.discard(trial._trial_id)
            if state == "fail":
                self.failures_in_a_row += 1
                limit = self.plan.spec.max_consecutive_failures
                if limit and self.failures_in_a_row >= limit:
                    self._stop(f"{self.failures_in_a_row} trials failed in a row")
                if result.get("kind") == "objective_missing" and self.fatal is None:
                    reason = result.get("reason")
                    self.fatal = RecipeError(f"Recipe {self.plan.loaded.path}: {reason}")
                    self._stop("the objective is not logged")
            elif state in ("complete", "pruned"):
                self.failures_in_a_row = 0
        self.on_event(TrialFinished(trial_record(frozen, self.plan.space)))

    def _record(self, trial: optuna.Trial, result: TrialOutcome) -> FrozenTrial:
        """Write a trial's outcome into the study."""
        state = result["state"]
        for key in ("epochs_run", "best_epoch", "pruned_at_epoch", "run_dir", "seconds"):
            value = result.get(key)
            if value is not None:
                trial.set_user_attr(key, value)
        if state == "complete":
            value = result.get("value")
            assert value is not None, "a complete trial scores its best epoch"
            return self.study.tell(trial, float(value))
        if state == "pruned":
            return self.study.tell(trial, state=TrialState.PRUNED)
        # a trial process hides the password itself; a crashed one's log tail may not have
        reason = mask_credentials(
            str(result.get("reason") or "failed without a reason"), self.plan.storage_url
        )
        trial.set_user_attr(
            "fail_reason", INTERRUPTED_BY_USER if state == "interrupted" else reason
        )
        trial.set_user_attr("fail_kind", str(result.get("kind", state)))
        if state == "interrupted":
            trial.set_user_attr("interrupted", True)
        frozen = self.study.tell(trial, state=TrialState.FAIL)
        if state == "interrupted":
            requeue(self.study, frozen)
        return frozen

    def _signal_trials(self, sig: signal.Signals) -> None:
        with self.lock:
            self.interrupting = True
            self._stop("interrupted")
            processes = list(self.processes.values())
            waiting = [p for p in self.standby.values() if p is not None]
        for process in processes:
            send_signal(process, sig)
        for process in waiting:
            discard(process)
