"""The Optuna study behind `dltrain tune`: storage, sampler, pruner, identity and recovery.

A study lives in a SQL database that Optuna's own tools read (``optuna trials --storage URL``):
an SQLite file in ``runs/<recipe>/tune/`` by default, or any SQLAlchemy URL (PostgreSQL, MySQL)
shared by tuners on many machines. Each worker process is identified in its trials' user
attributes, and records heartbeats while a trial runs, so a trial whose worker died is found,
marked failed and queued again with the same parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from dltrain.credentials import mask_credentials
from dltrain.errors import DltrainError, RecipeError, RunError, UsageError
from dltrain.processes import boot_id, is_alive, process_started
from dltrain.recipe.schema import Recipe
from dltrain.recipe.tune import Direction, PrunerName, SamplerName, TuneSpec
from dltrain.runs import TUNE_DIR, runs_dir
from dltrain.tuning.protocol import PrunerConfig
from dltrain.tuning.space import SearchSpace

STUDY_ATTR = "dltrain"  # the study's user attribute recording what it was started from
HEARTBEAT_SECONDS = 10
# A trial whose worker has not beaten for this long is taken for dead (a remote machine lost).
# Dead workers on this machine are found at once by their process id instead.
GRACE_SECONDS = 60
# Recipe fields that may differ between workers and sessions of one study: where the data sits
# on each machine, and how long or how hard this session searches.
_FREE_FIELDS = ("data.source",)
_FREE_TUNE_FIELDS = (
    "num_trials",
    "timeout",
    "trial_timeout",
    "max_consecutive_failures",
    "study_name",
    "sampler",
    "pruner",
    "min_epochs",
    "reduction_factor",
)


def silence_optuna() -> None:
    """Keep Optuna's log lines and warnings off the user's terminal; dltrain reports trials.

    Process-wide filters rather than ``warnings.catch_warnings``, which is not thread-safe and
    the tuner's worker threads call Optuna.
    """
    optuna.logging.disable_default_handler()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    warnings.filterwarnings("ignore", module=r"optuna(\..*)?$")


silence_optuna()


def tune_root(workdir: Path, name: str) -> Path:
    """``runs/<recipe>/tune/``: the default study database and one folder per study."""
    return runs_dir(workdir, name) / TUNE_DIR


def default_storage(workdir: Path, name: str) -> str:
    """The embedded SQLite database of recipe ``name``'s studies."""
    return f"sqlite:///{(tune_root(workdir, name) / 'study.db').resolve()}"


def open_storage(url: str, *, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """Connect to a study database, creating Optuna's tables on first use.

    Args:
        url: an SQLAlchemy URL: ``sqlite:///path``, ``postgresql://user@host/db``, …
        heartbeat: record worker heartbeats and set up the schema (the tuner); trial processes
            leave it off.

    Raises:
        UsageError: not a database URL.
        RunError: the database cannot be reached or its driver is not installed.
    """
    given = url  # as typed, for messages: the driver rewrite below changes the scheme
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Several trial processes write to one file; wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True  # survive a server restart between trials
    if url.startswith(("postgresql://", "postgres://")):
        # The driver dltrain installs (psycopg 3), whichever one this SQLAlchemy defaults to.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    for attempt in range(5):
        try:
            return _connect(url, engine_kwargs, heartbeat)
        except Exception as exc:
            # Tuners started at the same moment on a fresh database race to create Optuna's
            # tables; the loser's CREATE fails, and a moment later the tables are there.
            if attempt < 4 and ("duplicate key" in str(exc) or "already exists" in str(exc)):
                time.sleep(random.uniform(0.2, 1.0))
                continue
            raise _storage_error(exc, given) from None
    raise AssertionError("unreachable")


def _connect(
    url: str, engine_kwargs: dict[str, Any], heartbeat: bool
) -> optuna.storages.RDBStorage:
    with quiet_optuna():  # heartbeats are "experimental" in Optuna, and say so each time
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS if heartbeat else None,
            grace_period=GRACE_SECONDS if heartbeat else None,
            heartbeat_stale_trial_callback=_StaleRequeue() if heartbeat else None,
            # A trial process joins a database its tuner already set up: skip the schema
            # checks, which cost a second per trial.
            skip_compatibility_check=not heartbeat,
            skip_table_creation=not heartbeat,
        )


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Report a study database that fails once open (read-only, full disk, server gone) as one
    paragraph naming it, rather than as a bug.

    Args:
        url: the storage URL as the user gave it (its password is hidden in the message).

    Raises:
        RunError: the database refused a read or a write.
    """
    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise _storage_error(exc, url) from None


def _database_cause(exc: BaseException) -> str:
    """The database's own words: the driver's error under SQLAlchemy's and Optuna's wrappers."""
    seen: BaseException | None = exc
    while seen is not None:
        orig = getattr(seen, "orig", None)
        if orig is not None:
            return str(orig)
        if seen.__cause__ is None:
            break
        seen = seen.__cause__
    return str(seen or exc)


# SQLite's messages for a file it cannot write, and what the user can do about each.
_SQLITE_FAULTS = {
    "readonly database": "make the file and its folder writable by your user (SQLite writes a "
    "journal beside the file)",
    "unable to open database file": "make its folder exist and be writable by your user",
    "disk is full": "free space on that disk (df -h shows it)",
    "disk i/o error": "check the disk (dmesg shows device errors)",
    "not a database": "it is some other file: point --storage at a new path",
}


def _storage_error(exc: BaseException, url: str) -> DltrainError:
    """The user's version of a failure to open or use the study database.

    Args:
        exc: what the driver, SQLAlchemy or Optuna raised.
        url: the storage URL as given; only its masked form, and a detail from which every
            piece of its password is hidden, reach the message.
    """
    shown = mask_credentials(url, url)
    if isinstance(exc, ImportError):  # Optuna wraps the driver's ModuleNotFoundError
        driver = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "?"
        return RunError(
            f"Cannot open study storage {shown}: its database driver `{driver}` is not "
            f"installed. dltrain installs psycopg for postgresql:// URLs; for another database "
            f"install its SQLAlchemy driver (pip install pymysql for mysql+pymysql://)."
        )
    detail = mask_credentials(_database_cause(exc).strip(), url).splitlines()
    cause = detail[0] if detail else type(exc).__name__
    if type(exc).__name__ == "ArgumentError" or isinstance(exc, ValueError):
        # ValueError: SQLAlchemy read the URL but not its parts (a port that is no number)
        return UsageError(
            f"--storage {shown} is not a database URL ({cause}). Expected an SQLAlchemy URL "
            f"such as sqlite:///runs/study.db or postgresql://user@host:5432/dbname (the "
            f"password after the user and a colon), with special characters in the password "
            f"written as %XX: @ as %40, : as %3A, / as %2F."
        )
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        fix = next(
            (f for key, f in _SQLITE_FAULTS.items() if key in cause.lower()),
            "check that the file is an SQLite database your user may write",
        )
        return RunError(
            f"Cannot write the study database {path}: {cause}. To fix it, {fix}, or give "
            f"--storage another database (sqlite:///path/to/study.db)."
        )
    return RunError(
        f"Cannot open study storage {shown}: {cause}. Check that the database server is "
        f"running and reachable, that the database exists and that the user may write to it."
    )


def make_sampler(spec: TuneSpec, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler the recipe names, seeded."""
    name = spec.sampler
    if name is SamplerName.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if name is SamplerName.GRID:
        return _GridSampler(space.grid(), seed=seed)
    if name is SamplerName.CMAES:
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,  # choices are drawn at random; CMA-ES needs numbers
        )
    if name is SamplerName.QMC:
        return optuna.samplers.QMCSampler(
            seed=seed,
            scramble=True,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )
    conditional = any(p.when for p in space.params.values())
    # Optuna's default of 10 random start-up trials spends half of a 20-trial budget blind; a
    # third of the budget (at least 3) leaves TPE most of it to model.
    budget = spec.num_trials or 30
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=min(10, max(3, budget // 3)),
        multivariate=True,  # models parameters jointly: learning rate and batch size interact
        group=conditional,  # needed for multivariate TPE over conditional parameters
        constant_liar=True,  # parallel workers avoid proposing what is already running
        warn_independent_sampling=False,
    )


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without stopping an ``optimize`` loop dltrain does not use.

    dltrain's own loop stops when the study holds as many trials as the grid has points.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        return None


def pruner_config(spec: TuneSpec, max_epochs: int) -> PrunerConfig:
    """What a trial process needs to build the same pruner (see ``make_pruner``)."""
    return PrunerConfig(
        name=spec.pruner.value,
        min_epochs=spec.min_epochs,
        max_epochs=max(max_epochs, spec.min_epochs),
        reduction_factor=spec.reduction_factor,
    )


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The pruner a ``pruner_config`` describes; steps are 1-based epochs."""
    name = PrunerName(config["name"])
    low, high, factor = config["min_epochs"], config["max_epochs"], config["reduction_factor"]
    if name is PrunerName.HYPERBAND:
        return optuna.pruners.HyperbandPruner(
            min_resource=low, max_resource=high, reduction_factor=factor
        )
    if name is PrunerName.SUCCESSIVE_HALVING:
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=low, reduction_factor=factor)
    if name is PrunerName.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=low)
    return optuna.pruners.NopPruner()


def study_identity(recipe: Recipe, spec: TuneSpec) -> dict[str, Any]:
    """What makes two sessions the same study: the recipe as trained, the objective, the space.

    Where the data sits and how long a session runs may differ between sessions and machines.
    """
    document = recipe.model_dump(mode="json")
    for dotted in _FREE_FIELDS:
        section, key = dotted.split(".")
        document[section].pop(key, None)
    tune = document.pop("tune") or {}
    for key in _FREE_TUNE_FIELDS:
        tune.pop(key, None)
    tune["direction"] = spec.resolved_direction.value
    return {"recipe": document, "tune": tune}


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [prefix.rstrip(".")]


@dataclass(frozen=True)
class OpenedStudy:
    study: optuna.Study
    storage: optuna.storages.RDBStorage
    created: bool  # this process created it (rather than joining or resuming it)
    # Studies of the requested name and its ``-2``, ``-3``, … passed over on the way: each was
    # started from another recipe and has nothing but failed trials (see ``open_study``).
    passed_over: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.study.study_name


# How far ``<name>-2``, ``<name>-3``, … are tried before giving up (a runaway loop, not a limit
# anyone reaches by hand).
_MAX_SUFFIX = 1000


def _derived_names(name: str) -> Iterator[str]:
    """``name-2``, ``name-3``, …: the names a fresh study beside ``name`` takes, in order."""
    for number in range(2, _MAX_SUFFIX + 1):
        yield f"{name}-{number}"


def free_study_name(storage: optuna.storages.RDBStorage, name: str) -> str:
    """The first of ``name``, ``name-2``, ``name-3``, … that no study in ``storage`` has."""
    taken = {s.study_name for s in storage.get_all_studies()}
    return next((n for n in (name, *_derived_names(name)) if n not in taken), f"{name}-new")


def open_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    spec: TuneSpec,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    *,
    new: bool = False,
) -> OpenedStudy:
    """Create the study, or join it if it exists and was started from the same recipe.

    A study of that name started from another recipe blocks it (its trials are not comparable
    with this recipe's) unless every one of its trials failed: then there is nothing to compare,
    and the first of ``name-2``, ``name-3``, … that is free or matches this recipe is opened
    instead, leaving the failed study as it was (its logs say why it failed). The same recipe
    run again finds the same study, so sessions and workers still meet.

    Args:
        storage: the study database.
        name: the study's name.
        spec: the tune section (for the direction).
        identity: ``study_identity`` of this session's recipe.
        sampler: the sampler (a process joining a study should then reseed it, see
            ``joining_seed``).
        pruner: the pruner.
        new: start a fresh study: ``name`` if free, else the first free ``name-2``, ``name-3``, …
            (``--new-study``).

    Raises:
        RecipeError: a study of that name was started from another recipe, objective or space,
            and holds trials that did not fail.
    """
    if new:
        name = free_study_name(storage, name)
    opened, changed = _open_or_join(storage, name, spec, identity, sampler, pruner)
    if opened is not None:
        return opened
    passed: list[str] = []
    study = optuna.load_study(study_name=name, storage=storage)
    if any(t.state is not TrialState.FAIL for t in study.get_trials(deepcopy=False)):
        raise _changed_recipe(storage, name, changed, study)
    passed.append(name)
    for candidate in _derived_names(name):
        opened, _ = _open_or_join(storage, candidate, spec, identity, sampler, pruner)
        if opened is not None:
            return OpenedStudy(opened.study, storage, opened.created, tuple(passed))
        passed.append(candidate)
    raise RecipeError(  # pragma: no cover - a thousand studies of one recipe
        f"Studies '{name}' to '{name}-{_MAX_SUFFIX}' were all started from other recipes. "
        f"Name this one with --study-name."
    )


def _open_or_join(
    storage: optuna.storages.RDBStorage,
    name: str,
    spec: TuneSpec,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[OpenedStudy | None, list[str]]:
    """The study ``name`` created or joined; or None and what changed since it was started.

    Raises:
        RecipeError: a study of that name that dltrain did not create holds trials.
    """
    direction: Literal["minimize", "maximize"] = (
        "maximize" if spec.resolved_direction is Direction.MAXIMIZE else "minimize"
    )
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=direction, sampler=sampler, pruner=pruner
        )
        study.set_user_attr(STUDY_ATTR, identity)
        return OpenedStudy(study, storage, created=True), []
    except DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    recorded = _wait_for_identity(study)
    if recorded is None:
        if study.trials:
            shown = mask_credentials(storage.url, storage.url)
            raise RecipeError(
                f"Study '{name}' in {shown} was not created by dltrain tune (it has no record of "
                f"its recipe), so its trials cannot be resumed from this recipe. "
                f"{_choices(storage, name)}"
            )
        if study.direction.name.lower() == direction:
            study.set_user_attr(STUDY_ATTR, identity)
            return OpenedStudy(study, storage, created=False), []
        recorded = {}
    changed = [c.removeprefix("recipe.") for c in _differences(recorded, identity)]
    if study.direction.name.lower() != direction and "tune.direction" not in changed:
        changed.append("tune.direction")
    if not changed:
        return OpenedStudy(study, storage, created=False), []
    return None, changed


def _choices(storage: optuna.storages.RDBStorage, name: str) -> str:
    """What the user can do about a study that blocks this recipe: the same words everywhere."""
    shown = mask_credentials(storage.url, storage.url)
    return (
        f"Start a fresh study beside it with --new-study (it will be named "
        f"'{free_study_name(storage, name)}'), name another one with --study-name NAME, or "
        f"delete the old one with `optuna delete-study --storage {shown} --study-name {name}`."
    )


def _changed_recipe(
    storage: optuna.storages.RDBStorage, name: str, changed: list[str], study: optuna.Study
) -> RecipeError:
    shown = mask_credentials(storage.url, storage.url)
    listed = ", ".join(f"`{c}`" for c in changed[:8]) + (" …" if len(changed) > 8 else "")
    kept = sum(t.state is not TrialState.FAIL for t in study.get_trials(deepcopy=False))
    return RecipeError(
        f"Study '{name}' in {shown} was started from a different recipe: {listed} changed "
        f"since. Its {kept} trial(s) that did not fail would not be comparable with new ones. "
        f"Change the recipe back to resume it. {_choices(storage, name)}"
    )


def _wait_for_identity(study: optuna.Study) -> Any:
    # A worker that starts at the same moment as the study's creator may look before the creator
    # has recorded the recipe; give it a few seconds.
    for _ in range(20):
        recorded = study.user_attrs.get(STUDY_ATTR)
        if recorded is not None or study.trials:
            return recorded
        time.sleep(0.25)
        study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    return None


def joining_seed(seed: int, study: optuna.Study) -> int:
    """A sampler seed for a worker joining or resuming a study: differs per process and session."""
    text = f"{seed}:{len(study.trials)}:{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


# --- workers and their trials -----------------------------------------------------------------


class Worker(TypedDict):
    """How a tuner process names itself in the trials it runs (an Optuna user attribute)."""

    host: str
    pid: int
    boot: str | None  # the machine's boot id: a reboot since means the process is gone
    started: str | None  # the process's start time, which tells a reused pid apart


def this_worker() -> Worker:
    """How this process names itself in the trials it runs."""
    pid = os.getpid()
    return Worker(host=socket.gethostname(), pid=pid, boot=boot_id(), started=process_started(pid))


def worker_is_dead(worker: Any) -> bool:
    """Whether a worker recorded on this machine is certainly gone (others: unknown → False)."""
    if not isinstance(worker, dict) or not isinstance(worker.get("pid"), int):
        return False
    host = worker.get("host")
    alive = is_alive(str(host), worker["pid"], worker.get("boot"), worker.get("started"))
    return alive is False


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a new trial with the parameters of one that was cut short."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


class _StaleRequeue:
    """Optuna's stale-trial callback: queue the trial again (called once, by whoever failed it)."""

    def __init__(self) -> None:
        self.recovered: list[int] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        requeue(study, trial)
        self.recovered.append(trial.number)


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail and queue again the running trials whose worker is gone; return their numbers.

    Workers on this machine are checked by process id, so rerunning a killed ``dltrain tune``
    resumes at once; workers elsewhere are taken for dead when their heartbeat is older than
    ``GRACE_SECONDS``. Of several tuners finding the same trial, only the one whose update
    succeeds queues it again.
    """
    recovered: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not worker_is_dead(trial.user_attrs.get("worker")):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another tuner got there first
        requeue(study, trial)
        recovered.append(trial.number)
    storage = study._storage  # Optuna's heartbeat API lives on the storage
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    callback = getter() if getter is not None else None
    optuna.storages.fail_stale_trials(study)
    if isinstance(callback, _StaleRequeue):
        recovered += callback.recovered
        callback.recovered.clear()
    return recovered


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Whether a trial uses up one of ``num_trials``: all do but those cut short and requeued."""
    if trial.state is TrialState.FAIL:
        return "fail_reason" in trial.user_attrs and not trial.user_attrs.get("interrupted")
    return True


def budget_used(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False))


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence every warning for a block (main thread only; see ``silence_optuna``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
