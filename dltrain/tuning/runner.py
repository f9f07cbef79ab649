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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dltrain.errors import DltrainError, RecipeError, UsageError
from dltrain.recipe import LoadedRecipe, load_recipe
from dltrain.recipe.durations import format_duration
from dltrain.recipe.tune import TuneSpec
from dltrain.runs import StudyFolder, data_dir, write_json_atomic, write_text_atomic
from dltrain.tuning.records import TrialRecord, trial_record
from dltrain.tuning.space import SearchSpace, ordered_overrides, refusal_reason
from dltrain.tuning.study import (
    HEARTBEAT_SECONDS,
    OpenedStudy,
    budget_used,
    default_storage,
    joining_seed,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    pruner_config,
    quiet_optuna,
    recover_stale_trials,
    requeue,
    silence_optuna,
    study_identity,
    this_worker,
    tune_root,
)
from dltrain.tuning.trial import STORAGE_ENV

# How a trial process is started; the tests put a TensorFlow-free stand-in here.
TRIAL_COMMAND: list[str] = [sys.executable, "-m", "dltrain.tuning.trial"]
INTERRUPTED_BY_USER = "interrupted by the user (Ctrl-C); it was queued to run again"


@dataclass(frozen=True)
class TunePlan:
    """A validated search, ready to run: what, where, and how many at once."""

    loaded: LoadedRecipe
    spec: TuneSpec
    space: SearchSpace
    workdir: Path
    storage_url: str
    study_name: str
    study_dir: Path  # runs/<recipe>/tune/<study>/
    jobs: int
    num_trials: int | None  # the study's trial budget (a grid caps it at its size)
    grid_size: int | None

    @property
    def files(self) -> StudyFolder:
        """The paths of the study's files: its base recipe, summary, trials and their logs."""
        return StudyFolder(self.study_dir)

    @property
    def max_epochs(self) -> int:
        return self.space.max_epochs(self.loaded.recipe)


def plan_study(
    loaded: LoadedRecipe,
    base_overrides: Sequence[tuple[str, Any]],
    workdir: Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
) -> TunePlan:
    """Check the recipe's search space against the recipe and settle where the study lives.

    Args:
        loaded: the recipe, command-line overrides applied.
        base_overrides: those overrides, to validate every proposed value with them.
        workdir: the folder holding data/ and runs/.
        storage: a database URL; default: ``runs/<recipe>/tune/study.db``.
        study_name: default: ``tune.study_name``, else the recipe's name.
        jobs: trials to run at once in this process.

    Raises:
        RecipeError: no tune section, or a space that cannot produce valid recipes.
        UsageError: a bad ``jobs`` or study name.
    """
    recipe = loaded.recipe
    spec = recipe.tune
    if spec is None:
        raise RecipeError(
            f"Recipe {loaded.path} has no `tune:` section, so there is nothing to search. Add "
            f"one naming the objective and the fields to tune, for example\n  tune:\n"
            f"    objective: val_accuracy\n    num_trials: 20\n    space:\n"
            f"      train.optimizer.learning_rate: {{log_uniform: [1.0e-4, 1.0e-2]}}\n"
            f"      model.dropout: {{uniform: [0.1, 0.6]}}\n(see the README's recipe reference)."
        )
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1. Received: --jobs {jobs}.")
    name = study_name or spec.study_name or recipe.name
    if not name or "/" in name or name.startswith("."):
        raise UsageError(
            f"--study-name {name!r} cannot name a folder. Use letters, digits, '.', '_', '-'."
        )
    space = SearchSpace.from_spec(spec)
    space.check(loaded.path, base_overrides, spec.sampler)
    grid_size = space.grid_size() if spec.sampler.value == "grid" else None
    num_trials = spec.num_trials
    if grid_size is not None:
        num_trials = grid_size if num_trials is None else min(num_trials, grid_size)
    return TunePlan(
        loaded=loaded,
        spec=spec,
        space=space,
        workdir=workdir,
        storage_url=storage or default_storage(workdir, recipe.name),
        study_name=name,
        study_dir=tune_root(workdir, recipe.name) / name,
        jobs=jobs,
        num_trials=num_trials,
        grid_size=grid_size,
    )


@dataclass(frozen=True)
class StudyStart:
    """The study as this session found it."""

    opened: OpenedStudy
    data_prepared: bool  # False: the prepared dataset was already up to date
    existing: int  # trials already in the study
    recovered: list[int]  # trials whose tuner had died, queued again


def start_study(plan: TunePlan) -> StudyStart:
    """Prepare the data once (a no-op when up to date) and open or join the study.

    Raises:
        DataError: the data cannot be prepared.
        RunError: the storage cannot be opened.
        RecipeError: the study exists with a different recipe.
    """
    from dltrain.data.prepare import prepare

    recipe = plan.loaded.recipe
    prepared = prepare(recipe.data, recipe.seed, data_dir(plan.workdir, recipe.name))
    storage = open_storage(plan.storage_url)
    spec, space = plan.spec, plan.space
    pruner = make_pruner(pruner_config(spec, plan.max_epochs))
    with quiet_optuna():
        opened = open_study(
            storage,
            plan.study_name,
            spec,
            study_identity(recipe, spec),
            make_sampler(spec, space, recipe.seed),
            pruner,
        )
        if not opened.created:
            # Resuming or joining: draw a fresh sequence, or two tuners would propose the same
            # parameters (and a resumed random search would repeat its first trials).
            opened.study.sampler = make_sampler(
                spec, space, joining_seed(recipe.seed, opened.study)
            )
        existing = len(opened.study.trials)
        recovered = recover_stale_trials(opened.study)
    write_text_atomic(plan.files.base_recipe, plan.loaded.to_yaml())
    return StudyStart(opened, not prepared.up_to_date, existing, recovered)


# --- events for the live display ----------------------------------------------------------------


@dataclass(frozen=True)
class TrialStarted:
    number: int
    params: dict[str, Any]
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
            _discard(self.standby.pop(slot, None))
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    self.workers_done.set()

    def _stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason

    def _next_trial(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        with self.lock:
            if self.stop_reason:
                return None
            if self.deadline is not None and time.monotonic() >= self.deadline:
                budget = format_duration(self.deadline - self.started)
                self._stop(f"the time budget ({budget}) is spent")
                return None
            self.outcome.recovered += recover_stale_trials(self.study)
            limit = self.plan.num_trials
            if limit is not None and budget_used(self.study) >= limit:
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

    def _run(self, trial: optuna.Trial, values: dict[str, Any], *, slot: int) -> None:
        plan = self.plan
        number = trial.number
        retry_of = trial.user_attrs.get("retry_of")
        self.on_event(TrialStarted(number, values, retry_of))
        overrides = ordered_overrides(values)
        try:
            epochs = load_recipe(plan.files.base_recipe, overrides).recipe.train.epochs
        except RecipeError as exc:  # a combination no single value showed (e.g. two clippings)
            self._finish(trial, {"state": "fail", "kind": "invalid", "reason": refusal_reason(exc)})
            return
        files = plan.files
        files.trial(number).mkdir(parents=True, exist_ok=True)
        result_path = files.trial_result(number)
        spec = {
            "recipe": str(plan.files.base_recipe),
            "overrides": [[path, value] for path, value in overrides],
            "params": values,
            "workdir": str(plan.workdir),
            "study": plan.study_name,
            "trial_id": trial._trial_id,
            "trial_number": number,
            "epochs": epochs,
            "objective": plan.spec.objective,
            "direction": plan.spec.resolved_direction.value,
            "pruner": pruner_config(plan.spec, plan.max_epochs),
            "parent_pid": os.getpid(),
            "result": str(result_path),
            "log": str(files.trial_log(number)),
        }
        spec_path = files.trial_spec(number)
        write_json_atomic(spec_path, spec)
        trial.set_user_attr("log", str(files.trial_log(number)))
        outcome = self._launch(spec_path, files.trial_log(number), result_path, number, slot)
        self._finish(trial, outcome)

    def _spawn(self, slot: int) -> subprocess.Popen[str]:
        """Start a trial process in standby: it warms up, then reads its spec path on stdin."""
        files = self.plan.files
        files.trials.mkdir(parents=True, exist_ok=True)
        with files.standby_log(slot).open("a", encoding="utf-8") as log:
            return subprocess.Popen(
                [*TRIAL_COMMAND, "--standby"],
                cwd=self.plan.workdir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,  # the trial's own log takes over once it has its spec
                env=self._trial_env(),
                text=True,
                start_new_session=True,  # Ctrl-C reaches the tuner, which stops trials cleanly
            )

    def _start(self, spec_path: Path, slot: int) -> subprocess.Popen[str]:
        """A process running the trial ``spec_path``: the warm standby, else a fresh one."""
        process = self.standby.pop(slot, None)
        if process is None or process.poll() is not None:
            _discard(process)
            process = self._spawn(slot)
        if not _hand(process, spec_path):  # it died warming up (its standby log says why)
            _discard(process)
            process = self._spawn(slot)
            _hand(process, spec_path)  # if this one fails too, the trial fails with its log
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

    def _launch(
        self, spec_path: Path, log_path: Path, result_path: Path, number: int, slot: int
    ) -> dict[str, Any]:
        plan = self.plan
        process = self._start(spec_path, slot)
        with self.lock:
            self.processes[number] = process
            if self.interrupting:
                _signal(process, signal.SIGINT)
        timed_out = threading.Event()
        timer = None
        if plan.spec.trial_timeout:
            timer = threading.Timer(plan.spec.trial_timeout, _expire, (process, timed_out))
            timer.daemon = True
            timer.start()
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                event = json.loads(line)
                if event.get("event") == "epoch":
                    self.on_event(
                        TrialProgress(
                            number, int(event["epoch"]), plan.max_epochs, float(event["value"])
                        )
                    )
        code = process.wait()
        if timer is not None:
            timer.cancel()
        with self.lock:
            self.processes.pop(number, None)
        if result_path.is_file() and not timed_out.is_set():
            try:
                return dict(json.loads(result_path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                pass
        return self._explain_exit(code, timed_out.is_set(), log_path, slot)

    def _explain_exit(
        self, code: int, timed_out: bool, log_path: Path, slot: int
    ) -> dict[str, Any]:
        if timed_out:
            timeout = self.plan.spec.trial_timeout
            limit = "none" if timeout is None else format_duration(timeout)
            return {
                "state": "fail",
                "kind": "timeout",
                "reason": f"ran longer than tune.trial_timeout ({limit}) and was stopped.",
            }
        if self.interrupting:
            return {"state": "interrupted", "reason": INTERRUPTED_BY_USER}
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code == signal.SIGKILL:
                reason = (
                    "its process was killed (SIGKILL) before it finished; most often the system "
                    "ran out of memory (see `dmesg`). A smaller batch_size or model may fit."
                )
            else:
                reason = f"its process was killed by {name} before it finished."
            return {"state": "fail", "kind": "killed", "reason": reason}
        # A process that died before it had its spec wrote to its standby log instead.
        tail = _last_line(log_path) or _last_line(log_path.parent.parent / f"standby-{slot}.log")
        return {
            "state": "fail",
            "kind": "crashed",
            "reason": f"its process exited with code {code} without a result"
            + (f": {tail}" if tail else f"; see {log_path}."),
        }

    def _finish(self, trial: optuna.Trial, result: dict[str, Any]) -> None:
        state = result.get("state")
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
                    self.fatal = RecipeError(f"Recipe {self.plan.loaded.path}: {result['reason']}")
                    self._stop("the objective is not logged")
            elif state in ("complete", "pruned"):
                self.failures_in_a_row = 0
        self.on_event(TrialFinished(trial_record(frozen, self.plan.space)))

    def _record(self, trial: optuna.Trial, result: dict[str, Any]) -> FrozenTrial:
        """Write a trial's outcome into the study."""
        state = result.get("state")
        for key in ("epochs_run", "best_epoch", "pruned_at_epoch", "run_dir", "seconds"):
            if result.get(key) is not None:
                trial.set_user_attr(key, result[key])
        if state == "complete":
            return self.study.tell(trial, float(result["value"]))
        if state == "pruned":
            return self.study.tell(trial, state=TrialState.PRUNED)
        reason = str(result.get("reason") or "failed without a reason")
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

    def _trial_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            STORAGE_ENV: self.plan.storage_url,
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
        jobs = self.plan.jobs
        if jobs > 1:
            # Trials share the machine: split the cores instead of letting every TensorFlow
            # claim all of them, and let them share a GPU instead of the first taking its memory.
            threads = max(1, (os.cpu_count() or 1) // jobs)
            env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
            env.setdefault("TF_NUM_INTEROP_THREADS", str(min(2, threads)))
            env.setdefault("OMP_NUM_THREADS", str(threads))
            env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        return env

    def _signal_trials(self, sig: signal.Signals) -> None:
        with self.lock:
            self.interrupting = True
            self._stop("interrupted")
            processes = list(self.processes.values())
            waiting = [p for p in self.standby.values() if p is not None]
        for process in processes:
            _signal(process, sig)
        for process in waiting:
            _discard(process)


def _signal(process: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _hand(process: subprocess.Popen[str], spec_path: Path) -> bool:
    """Give a standby trial process its spec; False if it is no longer listening."""
    try:
        assert process.stdin is not None
        process.stdin.write(f"{spec_path}\n")
        process.stdin.close()
        return True
    except (BrokenPipeError, OSError):
        return False


def _discard(process: subprocess.Popen[str] | None) -> None:
    """Stop a standby trial process that will not be needed."""
    if process is None or process.poll() is not None:
        return
    _signal(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _expire(process: subprocess.Popen[str], flag: threading.Event) -> None:
    flag.set()
    _signal(process, signal.SIGKILL)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [x.strip() for x in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [x for x in lines if x]
        if lines:
            return lines[-1][:300]
    return ""
