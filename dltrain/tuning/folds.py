"""``tune.folds``: a trial scored by K-fold cross-validation instead of one validation split.

On small data one validation split ranks trials by its noise as much as by their settings. With
``tune.folds: K`` each trial is ``dltrain train --folds K`` (training/crossval.py) and scores the
mean over its folds of each fold's best epoch's objective, the objective measured on the rows
that fold held out. The pruner sees no per-epoch values (the K folds' epochs are not one curve),
so such a study prunes nothing; ``tune.num_trials`` and ``tune.timeout`` bound it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from dltrain.backend import keras
from dltrain.console import make_console
from dltrain.data.folds import Fold
from dltrain.recipe import LoadedRecipe, load_recipe
from dltrain.training.crossval import FoldOptions, cross_validate
from dltrain.tuning.callback import PruningCallback
from dltrain.tuning.protocol import TrainedTrial, TrialSpec
from dltrain.tuning.trial import EpochReporter, trial_marker


class _NeverPrune:
    """The Optuna trial as a fold's reporter sees it: values are not reported, nothing prunes."""

    def report(self, value: float, step: int) -> None:
        """Keep a fold's epochs out of the study: they are not the trial's curve."""

    def should_prune(self) -> bool:
        return False


def cross_validated_recipe(spec: TrialSpec, loaded: LoadedRecipe) -> LoadedRecipe | None:
    """The trial's recipe with ``train.folds`` set from ``tune.folds``; None when that is unset.

    Args:
        spec: the trial's spec (the recipe file, the trial's overrides, the workdir).
        loaded: the trial's recipe as loaded without folds.
    """
    tune = loaded.recipe.tune
    if tune is None or tune.folds is None:
        return None
    overrides = [(path, value) for path, value in spec["overrides"]]
    workdir = Path(spec["workdir"])
    return load_recipe(Path(spec["recipe"]), [*overrides, ("train.folds", tune.folds)], workdir)


def train_cross_validated(
    spec: TrialSpec, loaded: LoadedRecipe, reporter: EpochReporter
) -> TrainedTrial:
    """Train the trial as a cross-validation; its value is the folds' mean best objective.

    Args:
        spec: the trial's spec.
        loaded: the trial's recipe, ``train.folds`` set.
        reporter: the trial's reporter, which takes the mean as the trial's best value.

    Returns:
        The cross-validated run and the epochs its folds ran together.

    Raises:
        ObjectiveNotLogged: training does not log the objective.
    """
    fold_reporters: list[EpochReporter] = []
    direction = "maximize" if reporter.maximize else "minimize"

    def callbacks(fold: Fold) -> list[keras.callbacks.Callback]:
        fold_reporter = EpochReporter(
            _NeverPrune(), reporter.objective, direction, reporter.events, reporter.epochs
        )
        fold_reporters.append(fold_reporter)
        return [PruningCallback(fold_reporter)]

    options = FoldOptions(callbacks=callbacks, trial=True, tune=trial_marker(spec))
    result = cross_validate(loaded, Path(spec["workdir"]), make_console(), options)
    reporter.epochs_run = sum(r.epochs_run for r in fold_reporters)
    bests = [r.best for r in fold_reporters]
    if all(best is not None for best in bests):
        reporter.best = statistics.fmean(best for best in bests if best is not None)
        reporter.best_epoch = None  # the folds' best epochs differ; cross_validation.json has each
    return TrainedTrial(run_dir=str(result.run_dir), epochs_run=reporter.epochs_run)
