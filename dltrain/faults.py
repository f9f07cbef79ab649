"""A fault-injection switch for the crash tests: ``kill -9`` at a named write point.

Every place where a crash would leave a different state on disk (a checkpoint half renamed, a
state file not yet replaced, a model not yet in place) calls ``crash_point`` with its name.
Normally that is one dictionary lookup. With ``DLTRAIN_CRASH_AT=<point>`` (or ``<point>@<n>``,
the n-th time the point is reached) in the environment, the process sends itself SIGKILL right
there, so a test exercises the real write path and then checks that the rerun or ``--resume``
loses nothing beyond the current epoch. Light: no TensorFlow.

The points:

- ``prepare.shard``: a shard written, before the next; ``prepare.manifest``: the whole dataset
  written into its temporary folder, before it replaces ``data/<recipe>/``.
- ``train.checkpoint``: an epoch's checkpoint complete under its temporary name, not renamed;
  ``train.state``: it in place, ``state.json`` not yet replaced; ``train.best``: ``state.json``
  names the epoch best, ``best.keras`` complete under its temporary name, not renamed;
  ``train.prune``: both in place, older checkpoints not yet removed; ``train.model``:
  ``model.keras`` complete under its temporary name, not renamed; ``train.record``:
  ``model.keras`` in place, ``run.json`` not yet completed.
- ``tune.trial_spec`` (the tuner): a trial's spec written, its process not yet given it;
  ``tune.trial_record``: a trial's process done and its result written, the study not yet
  told; ``tune.report``: best.yaml, trials.csv and the plots written, summary.json not yet.
  The variable reaches trial processes too, which train with ``train.model`` and
  ``train.record`` points of their own.

Example:
    DLTRAIN_CRASH_AT=train.state@2 dltrain train   # dies before epoch 2's state.json
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "DLTRAIN_CRASH_AT"

_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL here when ``DLTRAIN_CRASH_AT`` names this point.

    Args:
        name: the write point, as listed in this module's docstring.
    """
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth or 1):
        # SIGKILL, as kill -9: no finally blocks, no atexit, no flushing, exactly as a crash.
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
