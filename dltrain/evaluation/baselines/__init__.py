"""Baselines beside every evaluation: what a model must beat, predicted on the same examples.

- classification: ``prior`` (the training split's class shares), and ``gbm`` on tables and small
  images;
- regression: ``mean`` (the training mean), and ``gbm`` on tables and small images;
- forecasting: ``naive`` (the last observed value) and ``seasonal_naive`` (the value a season
  before);
- autoencoders and GANs: none.

:func:`plan_baselines` says which baselines an evaluation of a run will have (gates may name
them, so it is checked before any model runs) and why the others are absent;
:func:`baseline_outputs` predicts them as the task's scorer reads a model's outputs, so every
baseline is scored by the very metric functions that score the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dltrain.errors import DataError, RunError
from dltrain.evaluation.baselines.gbm import gbm_unavailable, load_or_fit_gbm
from dltrain.evaluation.baselines.trivial import (
    mean_predictions,
    naive_forecast,
    prior_probabilities,
    seasonal_naive_forecast,
    window_target_columns,
)
from dltrain.evaluation.run_model import RunModel
from dltrain.manifest import NumericTarget, SequenceFeatures

Status = Callable[[str], None]

# The baselines a model that learned anything must beat; losing to one is a warning. Losing to
# gbm is only a note: a deep model may trail gradient boosting on a small table and still be
# worth having.
TRIVIAL = {
    "binary": ("prior",),
    "multiclass": ("prior",),
    "regression": ("mean",),
    "forecasting": ("naive", "seasonal_naive"),
}
DESCRIPTIONS = {
    "prior": "the training split's class shares for every example (accuracy: the majority's)",
    "mean": "the training split's mean of each target for every example",
    "naive": "each target's last observed value, repeated over the horizon",
    "seasonal_naive": "the value one season before each predicted step",
    "gbm": "scikit-learn's HistGradientBoosting fitted on the same training split",
}


@dataclass(frozen=True)
class BaselinePlan:
    """The baselines an evaluation will score, in order, and why any other is absent."""

    names: list[str]
    notes: list[str] = field(default_factory=list)


def plan_baselines(run: RunModel, *, gbm: bool = True) -> BaselinePlan:
    """Which baselines an evaluation of ``run`` has; nothing is read or fitted.

    Args:
        run: the evaluated run.
        gbm: include the gradient-boosting baseline where the data allows it (``train``'s
            check leaves it out: it is not cheap).
    """
    task = run.task
    if task not in TRIVIAL:
        return BaselinePlan([], [f"no baselines for {task} models (none is meaningful)"])
    names: list[str] = []
    notes: list[str] = []
    manifest = run.manifest
    if task == "forecasting":
        names, notes = _forecasting_plan(run)
    elif run.is_classifier:
        train = manifest.splits.get("train")
        if train is not None and train.class_counts and sum(train.class_counts) > 0:
            names.append("prior")
        else:
            notes.append("no prior baseline: the manifest holds no training class counts")
    elif isinstance(manifest.target, NumericTarget) and manifest.target.mean:
        names.append("mean")
    if gbm and task != "forecasting":
        why = gbm_unavailable(manifest, task)
        if why is None and run.data_folder is None:
            why = "no gradient-boosting baseline: the prepared data it is fitted on is gone"
        if why is None:
            names.append("gbm")
        else:
            notes.append(why)
    return BaselinePlan(names, notes)


def _forecasting_plan(run: RunModel) -> tuple[list[str], list[str]]:
    manifest = run.manifest
    features = manifest.features
    columns = list(features.columns) if isinstance(features, SequenceFeatures) else []
    if not all(t in columns for t in run.target_names):
        return [], ["no naive baselines: the input windows do not hold the targets"]
    season = manifest.series.season if manifest.series is not None else None
    lookback = int(features.shape[0]) if isinstance(features, SequenceFeatures) else 0
    if season is None:
        return ["naive"], [
            "no seasonal_naive baseline: the series has no season (set data.series.season)"
        ]
    if lookback < season:
        return ["naive"], [
            f"no seasonal_naive baseline: the lookback ({lookback} steps) is shorter than the "
            f"season ({season} steps)"
        ]
    return ["naive", "seasonal_naive"], []


@dataclass
class BaselineOutputs:
    """Each baseline's outputs on the evaluated examples, and notes on how they were made."""

    outputs: dict[str, np.ndarray]
    notes: list[str]


Parts = Callable[[], Iterable[tuple[Any, np.ndarray]]]


def baseline_outputs(
    run: RunModel,
    x: Any,
    y: np.ndarray,
    plan: BaselinePlan,
    say: Status,
    parts: Parts | None = None,
) -> BaselineOutputs:
    """Predict each planned baseline on the examples, as the task's scorer reads outputs.

    A baseline that cannot be made (a gradient-boosting fit on a training split of one class,
    windows shaped unlike the manifest's) is left out with a note rather than failing the
    evaluation.

    Args:
        run: the evaluated run.
        x: the examples' inputs, as the model takes them.
        y: their targets.
        plan: which baselines to predict.
        say: receives a line when the gradient-boosting baseline is fitted.
        parts: a streamed split's inputs and targets shard by shard, in order (``x`` is then
            None): the gradient-boosting baseline predicts one shard at a time.
    """
    outputs: dict[str, np.ndarray] = {}
    notes = list(plan.notes)
    manifest = run.manifest
    for name in plan.names:
        if name == "prior":
            counts = manifest.splits["train"].class_counts or []
            outputs[name] = prior_probabilities(counts, len(y))
        elif name == "mean":
            target = manifest.target_as(NumericTarget)
            outputs[name] = mean_predictions(target.mean, tuple(np.shape(y)))
        elif name in ("naive", "seasonal_naive"):
            found = _forecast(run, x, y, name)
            if found is None:
                notes.append(f"no {name} baseline: the windows are not shaped as prepared")
            else:
                outputs[name] = found
        elif name == "gbm":
            found, note = _gbm(run, parts or (lambda: [(x, y)]), say)
            if found is not None:
                outputs[name] = found
            if note:
                notes.append(note)
    return BaselineOutputs(outputs, notes)


def _forecast(run: RunModel, x: Any, y: np.ndarray, name: str) -> np.ndarray | None:
    if not isinstance(x, np.ndarray):
        return None
    features = run.manifest.features
    columns = list(features.columns) if isinstance(features, SequenceFeatures) else []
    targets = np.asarray(y)
    width = targets.shape[2] if targets.ndim == 3 else 1
    horizon = targets.shape[1] if targets.ndim >= 2 else 1
    picked = window_target_columns(x, columns, run.target_names, width)
    if picked is None:
        return None
    if name == "naive":
        return naive_forecast(x, picked, horizon)
    season = run.manifest.series.season if run.manifest.series is not None else None
    if season is None or season > (x.shape[1] if x.ndim >= 2 else 0):
        return None
    return seasonal_naive_forecast(x, picked, horizon, season)


def _gbm(run: RunModel, parts: Parts, say: Status) -> tuple[np.ndarray | None, str]:
    """The gradient-boosting baseline's outputs, and a note on how it was fitted; or no
    outputs and why."""
    from dltrain.evaluation.examples import prepared_dataset

    try:
        dataset = prepared_dataset(run)
        fitted, how = load_or_fit_gbm(dataset, run.task, say)
        outputs = np.concatenate([fitted.predict(x, tuple(np.shape(y))) for x, y in parts()])
    except (DataError, RunError, ValueError) as exc:
        reason = exc.message if isinstance(exc, DataError | RunError) else str(exc)
        return None, f"no gradient-boosting baseline: {reason}"
    notes = [n for n in [how, *fitted.notes] if n]
    return outputs, "; ".join(notes)
