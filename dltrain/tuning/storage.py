"""Where a study lives: connecting to its SQL database, and errors that say what went wrong.

A study lives in a SQL database that Optuna's own tools read (``optuna trials --storage URL``):
an SQLite file in ``runs/<recipe>/tune/`` by default, or any SQLAlchemy URL (PostgreSQL, MySQL)
shared by tuners on many machines.
"""

from __future__ import annotations

import contextlib
import random
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from sqlalchemy.exc import SQLAlchemyError

from dltrain.credentials import mask_credentials
from dltrain.errors import DltrainError, RunError, UsageError
from dltrain.tuning.recovery import GRACE_SECONDS, HEARTBEAT_SECONDS, StaleRequeue


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


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence every warning for a block (main thread only; see ``silence_optuna``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
            heartbeat_stale_trial_callback=StaleRequeue() if heartbeat else None,
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
