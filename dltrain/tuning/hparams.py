"""A study in TensorBoard's HParams tab: one event folder per trial with its drawn values and its
objective per epoch, beside the study's config (the parameters and the objective).

TensorFlow-free: TensorBoard's own protobuf builders and event writer, so the tuner (which never
imports TensorFlow) writes it after the study in a fraction of a second.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter

_SHOWN = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def write_hparams(
    trials: Sequence[optuna.trial.FrozenTrial], params: list[str], objective: str, folder: Path
) -> int:
    """Write the study's finished and pruned trials as TensorBoard HParams runs, afresh.

    Args:
        trials: the study's trials.
        params: the searched recipe paths (``tune.space``), the HParams columns.
        objective: the metric each trial is scored by, the HParams metric.
        folder: the event folder (replaced: it holds nothing but what this writes).

    Returns:
        How many trials were written.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    columns = {path: hp.HParam(path) for path in params}
    _write(folder, [hp.hparams_config_pb(list(columns.values()), [hp.Metric(objective)])])
    written = 0
    for trial in trials:
        if trial.state not in _SHOWN:
            continue
        values = {columns[k]: _value(v) for k, v in trial.params.items() if k in columns}
        summaries = [hp.hparams_pb(values, trial_id=f"trial {trial.number}")]
        curve = dict(trial.intermediate_values)
        if not curve and trial.value is not None:
            curve = {0: trial.value}
        steps = sorted(curve)
        _write(
            folder / f"trial-{trial.number}",
            summaries + [scalar_pb(objective, curve[s]) for s in steps],
            [0, *steps],
        )
        written += 1
    return written


def _write(folder: Path, summaries: list[Any], steps: list[int] | None = None) -> None:
    writer = EventFileWriter(str(folder))
    now = time.time()
    for index, summary in enumerate(summaries):
        step = steps[index] if steps else 0
        writer.add_event(Event(wall_time=now, step=step, summary=summary))
    writer.close()


def _value(value: Any) -> bool | int | float | str:
    """An HParams value: a number, bool or text (a list of filters as its JSON)."""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value)
