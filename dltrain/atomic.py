"""Files that later commands trust: written under a temporary name and renamed into place, so a
crash never leaves a half file that looks whole, and the leftovers of writers that were killed.

A temporary is named ``.<name>.partial-<host>-<pid>-<random><suffix>`` beside its target: the
next run of the same command can tell its own dead writer's leftovers from a live writer's, or
another machine's on a shared disk, and removes only those. Light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from dltrain.errors import FileSystemError, file_system_error, os_error_of


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that a crash leaves either the old file or the new one, never half.

    Raises:
        FileSystemError: the disk is read-only, full or forbidden (nothing half-written kept).
    """
    # "x" creates the file with the umask's mode, as a plain open would: others may read it
    with atomic_path(path) as tmp, tmp.open("x", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: Path, document: Any) -> None:
    """Write a JSON document atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


# A temporary's name says whose it is: ".<stem>.<kind>-<host tag>-<pid>-<random><suffix>", so
# the next run of a command can tell a killed writer's leftovers from a live writer's work.
# HOST_TAG: this machine, for a disk that several share.
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMPORARY = re.compile(
    r"^\.(?P<stem>.+)\.(?P<kind>partial|old)-(?P<host>[0-9a-f]{6})-(?P<pid>[0-9]+)-[0-9a-f]{6}"
    r"(?P<suffix>.*)$"
)


def _temporary(path: Path, kind: str) -> Path:
    """A fresh sibling of ``path`` for this process to write (``partial``) or to move the old
    one aside to (``old``); it keeps ``path``'s suffix, since some writers insist on it."""
    owner = f"{HOST_TAG}-{os.getpid()}-{secrets.token_hex(3)}"
    return path.with_name(f".{path.stem}.{kind}-{owner}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it into place on success.

    Works for files and folders. On failure the temporary is deleted; a process killed before
    that leaves it behind for ``remove_stale_partials``.

    Raises:
        FileSystemError: writing met a read-only, full or forbidden disk; the message names
            ``path`` (not the temporary) and nothing half-written is left.
    """
    tmp = _temporary(path, "partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if path.is_dir() and tmp.is_dir():
            # Swap folders: the old one moves aside first, so at no moment is a half one in place.
            old = _temporary(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except Exception as exc:
        fault = _write_fault(exc, path, tmp)
        if fault is None:
            raise
        raise fault from exc
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _write_fault(exc: BaseException, path: Path, tmp: Path) -> FileSystemError | None:
    """What a failure while writing ``path`` (through ``tmp``) is, when it is the disk's fault.

    An error about a file elsewhere (a source that cannot be read) is not this writer's to
    explain; an error inside the temporary is said of ``path``, which is what the user knows.
    """
    if isinstance(exc, FileSystemError):  # from a writer nested in this one's temporary
        cause = exc.__cause__
        if isinstance(cause, OSError) and _within(exc.path, tmp):
            return file_system_error(cause, path, writing=True)
        return None
    error = os_error_of(exc)
    if error is None:
        return None
    named = error.filename
    if named is None or _within(named, tmp) or Path(named) in (path, path.parent):
        return file_system_error(error, path, writing=True)
    return None


def _within(named: object, folder: Path) -> bool:
    if not isinstance(named, str | os.PathLike):
        return False
    candidate = Path(named)
    return candidate == folder or folder in candidate.parents


def remove_stale_partials(folder: Path, names: Collection[str] | None = None) -> list[Path]:
    """Delete the temporaries that killed writers left in ``folder``; the paths deleted.

    A temporary is deleted only when its writer, named in it, was a process of this machine that
    is gone: a live writer's work (another command running now) and another machine's (a shared
    disk) are left alone, and so is every file dltrain did not name.

    Args:
        folder: where to look (not below it).
        names: the files or folders whose temporaries the calling command owns (``model.keras``,
            the dataset folder's name); None: every temporary in ``folder``.

    Returns:
        What was deleted. Deleting is best effort: a read-only folder keeps its leftovers, and
        the command then meets the real problem when it writes.
    """
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for entry in folder.iterdir():
        found = _TEMPORARY.match(entry.name)
        if found is None or (names is not None and found["stem"] + found["suffix"] not in names):
            continue
        if found["host"] != HOST_TAG or _alive(int(found["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        if not entry.exists():
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
