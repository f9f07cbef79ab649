"""What evaluate and train say out loud: a model no better than a trivial baseline, and a split
too small for its numbers to mean much. Plain Python over metric values (importing it still
loads the baselines package, which uses NumPy)."""

from __future__ import annotations

from collections.abc import Mapping

from dltrain.evaluation.catalog import KEY_METRICS, Better, Metrics, better

# The metric that decides whether a model beat a baseline: the task's first key metric, except
# for forecasts, which are judged by MAE (the ratio to the naive forecast is an MAE ratio).
DECIDING = {task: names[0] for task, names in KEY_METRICS.items()} | {"forecasting": "mae"}
WHAT = {
    "prior": "the class prior (always the training split's class shares)",
    "mean": "the training mean",
    "naive": "the naive forecast (the last observed value)",
    "seasonal_naive": "the seasonal naive forecast (the value a season before)",
    "gbm": "gradient boosting",
}
# Below this many examples a split's metrics move by more than a point per example, and the
# bootstrap interval of a near-perfect score collapses: with 18 test rows all right, every
# resample is all right too and the interval reads "1.0000 - 1.0000". At 100 examples an
# accuracy of 0.9 still has a 95 % interval about ±0.06 wide, which is as coarse as a split
# can be and still tell two models apart by a few points.
MIN_EXAMPLES = 100


def _compare(task: str, metrics: Metrics, baseline: Metrics) -> tuple[str, float, float] | None:
    """(metric, model's value, baseline's) when the model is no better; None when it is, or
    when either value is undefined."""
    name = DECIDING.get(task)
    if name is None:
        return None
    value, base = metrics.get(name), baseline.get(name)
    if value is None or base is None:
        return None
    no_better = value <= base if better(name) == Better.HIGHER else value >= base
    return (name, float(value), float(base)) if no_better else None


def losing_warnings(
    task: str,
    metrics: Metrics,
    baselines: Mapping[str, Metrics],
    trivial: tuple[str, ...],
    where: str,
) -> list[str]:
    """A warning for each trivial baseline the model does no better than.

    Args:
        task: the model's task.
        metrics: the model's headline metrics.
        baselines: each baseline's headline metrics on the same examples.
        trivial: the names of the trivial baselines (losing to gbm is a note, not a warning).
        where: the examples, as the sentence names them ("the test split").
    """
    found = []
    for name in trivial:
        if name not in baselines:
            continue
        lost = _compare(task, metrics, baselines[name])
        if lost is None:
            continue
        metric, value, base = lost
        verb = "is worse than" if value != base else "is no better than"
        found.append(
            f"The model {verb} {WHAT.get(name, name)} on {where}: {metric} {_number(value)} "
            f"against {_number(base)}. It has learned nothing a trivial rule does not know; "
            f"check the data and the recipe (more epochs, another model family, differencing "
            f"for a series) before trusting it."
        )
    return found


def losing_notes(task: str, metrics: Metrics, baselines: Mapping[str, Metrics]) -> list[str]:
    """A note when gradient boosting does better than the model on the deciding metric."""
    lost = _compare(task, metrics, baselines["gbm"]) if "gbm" in baselines else None
    if lost is None:
        return []
    metric, value, base = lost
    return [
        f"gradient boosting does as well or better: {metric} {_number(base)} against the "
        f"model's {_number(value)}"
    ]


def _number(value: float) -> str:
    """A score with 4 decimals; an error in a target's units (house prices) with 2."""
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4f}"


def tiny_split_warning(num_examples: int, where: str) -> str | None:
    """A warning when ``num_examples`` are too few for the metrics and intervals to mean much."""
    if num_examples >= MIN_EXAMPLES:
        return None
    return (
        f"Only {num_examples} examples in {where}: each one moves a score by "
        f"{1 / max(num_examples, 1):.1%}, and bootstrap intervals of so few can read as narrow "
        f"as a single number. Give the test split a larger share (data.split.test), or "
        f"cross-validate with `dltrain train --folds K`, before trusting a difference."
    )
