"""Which process this is, and whether a process recorded earlier still runs. Light.

A run's record names the process training it (run_info.py ``RunOwner``), so a run left marked
running by ``kill -9`` reads as killed, and no second process takes up a run still training.
A process is named by its machine, its pid, the machine's boot and the process's start time:
after a reboot, or once its pid is given to a later process, it is known to be gone.
(tuning/recovery.py names its workers by the same four fields.)
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def boot_id() -> str | None:
    """This machine's boot id (Linux); None where there is none to read."""
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return None


def process_started(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux); None where unknown."""
    # Field 22 of /proc/<pid>/stat; the command name before it (in parentheses) may hold spaces.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    return None


def is_alive(host: str, pid: int, boot: str | None, started: str | None) -> bool | None:
    """Whether a process recorded earlier still runs.

    Args:
        host: the machine it ran on.
        pid: its process id.
        boot: the machine's boot id then, or None.
        started: its start time (``process_started``), or None.

    Returns:
        True or False on this machine; None for a process on another machine (no telling).
    """
    if host != socket.gethostname():
        return None
    if boot and boot_id() not in (None, boot):
        return False  # the machine rebooted since
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    # another start time than the one recorded: the pid was given to a later process
    return started is None or process_started(pid) in (None, started)
