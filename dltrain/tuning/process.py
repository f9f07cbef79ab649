"""Trial processes: starting one in standby, handing it its trial, stopping it, and saying why it
ended when it wrote no result.

Each trial runs in a process of its own (tuning/trial.py), started in its own session so that
Ctrl-C reaches the tuner, which then stops its trials cleanly through these helpers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

from dltrain.recipe.durations import format_duration
from dltrain.runs import StudyFolder
from dltrain.tuning.protocol import TrialOutcome
from dltrain.tuning.trial import STORAGE_ENV

INTERRUPTED_BY_USER = "interrupted by the user (Ctrl-C); it was queued to run again"


def spawn_standby(
    command: list[str], files: StudyFolder, slot: int, workdir: Path, env: dict[str, str]
) -> subprocess.Popen[str]:
    """Start a trial process in standby: it warms up, then reads its spec path on stdin.

    Args:
        command: how a trial process is started (``python -m dltrain.tuning.trial``).
        files: the study's folder, holding the standby logs.
        slot: the worker thread the process is for.
        workdir: the folder holding data/ and runs/.
        env: the process's environment (``trial_env``).
    """
    files.trials.mkdir(parents=True, exist_ok=True)
    with files.standby_log(slot).open("a", encoding="utf-8") as log:
        return subprocess.Popen(
            [*command, "--standby"],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,  # the trial's own log takes over once it has its spec
            env=env,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the tuner, which stops trials cleanly
        )


def trial_env(storage_url: str, jobs: int) -> dict[str, str]:
    """A trial process's environment: the study's storage, and its share of the machine.

    Args:
        storage_url: the study database (passed in the environment: it may hold a password).
        jobs: trials running at once in this tuner.
    """
    env = {**os.environ, STORAGE_ENV: storage_url, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    if jobs > 1:
        # Trials share the machine: split the cores instead of letting every TensorFlow
        # claim all of them, and let them share a GPU instead of the first taking its memory.
        threads = max(1, (os.cpu_count() or 1) // jobs)
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        env.setdefault("TF_NUM_INTEROP_THREADS", str(min(2, threads)))
        env.setdefault("OMP_NUM_THREADS", str(threads))
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return env


def hand(process: subprocess.Popen[str], spec_path: Path) -> bool:
    """Give a standby trial process its spec; False if it is no longer listening."""
    try:
        assert process.stdin is not None
        process.stdin.write(f"{spec_path}\n")
        process.stdin.close()
        return True
    except (BrokenPipeError, OSError):
        return False


def send_signal(process: subprocess.Popen[str], sig: signal.Signals) -> None:
    """Signal a trial process and whatever it started (its session's process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def discard(process: subprocess.Popen[str] | None) -> None:
    """Stop a standby trial process that will not be needed."""
    if process is None or process.poll() is not None:
        return
    send_signal(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def expire(process: subprocess.Popen[str], flag: threading.Event) -> None:
    """Kill a trial that ran past its time limit, flagging why."""
    flag.set()
    send_signal(process, signal.SIGKILL)


def explain_exit(
    code: int,
    *,
    timed_out: bool,
    interrupted: bool,
    trial_timeout: float | None,
    log_path: Path,
    standby_log: Path,
) -> TrialOutcome:
    """The outcome of a trial process that ended without writing its result.

    Args:
        code: its exit code (negative: the signal that killed it).
        timed_out: it ran past ``tune.trial_timeout`` and was killed.
        interrupted: the user pressed Ctrl-C.
        trial_timeout: ``tune.trial_timeout`` in seconds, for the message.
        log_path: the trial's log, whose last line may say why.
        standby_log: where a process that died before it had its spec wrote instead.
    """
    if timed_out:
        limit = "none" if trial_timeout is None else format_duration(trial_timeout)
        return TrialOutcome(
            state="fail",
            kind="timeout",
            reason=f"ran longer than tune.trial_timeout ({limit}) and was stopped.",
        )
    if interrupted:
        return TrialOutcome(state="interrupted", reason=INTERRUPTED_BY_USER)
    if code < 0:
        return TrialOutcome(state="fail", kind="killed", reason=_killed_reason(-code))
    tail = last_line(log_path) or last_line(standby_log)
    return TrialOutcome(
        state="fail",
        kind="crashed",
        reason=f"its process exited with code {code} without a result"
        + (f": {tail}" if tail else f"; see {log_path}."),
    )


def _killed_reason(number: int) -> str:
    if number == signal.SIGKILL:
        return (
            "its process was killed (SIGKILL) before it finished; most often the system "
            "ran out of memory (see `dmesg`). A smaller batch_size or model may fit."
        )
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"its process was killed by {name} before it finished."


def last_line(path: Path) -> str:
    """The last non-blank line of a log, cut to 300 characters; empty when there is none."""
    with contextlib.suppress(OSError):
        lines = [x.strip() for x in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [x for x in lines if x]
        if lines:
            return lines[-1][:300]
    return ""
