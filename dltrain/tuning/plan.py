"""A tune session's setup: check the search against the recipe, then prepare the data and open
or join the study, before any trial runs."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dltrain.atomic import write_text_atomic
from dltrain.credentials import mask_credentials
from dltrain.data.store import PreparedDataset
from dltrain.errors import ObjectiveNotLogged, RecipeError, UsageError
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.tune import TuneSpec
from dltrain.run_info import MlflowRef
from dltrain.runs import StudyFolder, data_dir
from dltrain.tuning.recovery import recover_stale_trials
from dltrain.tuning.space import SearchSpace
from dltrain.tuning.storage import open_storage, quiet_optuna
from dltrain.tuning.study import (
    OpenedStudy,
    default_storage,
    joining_seed,
    make_pruner,
    make_sampler,
    open_study,
    pruner_config,
    study_identity,
    tune_root,
)


@dataclass(frozen=True)
class TunePlan:
    """A validated search, ready to run: what, where, and how many at once."""

    loaded: LoadedRecipe
    spec: TuneSpec
    space: SearchSpace
    workdir: Path
    storage_url: str
    study_name: str
    study_dir: Path  # runs/<recipe>/tune/<study>/
    jobs: int
    num_trials: int | None  # the study's trial budget (a grid caps it at its size)
    grid_size: int | None
    new_study: bool = False  # --new-study: a fresh study beside any of that name
    mlflow_parent: MlflowRef | None = None  # train.tracking: mlflow: the study's MLflow run

    @property
    def files(self) -> StudyFolder:
        """The paths of the study's files: its base recipe, summary, trials and their logs."""
        return StudyFolder(self.study_dir)

    @property
    def storage_shown(self) -> str:
        """The storage URL as messages and files show it: its password hidden."""
        return mask_credentials(self.storage_url, self.storage_url)

    @property
    def max_epochs(self) -> int:
        return self.space.max_epochs(self.loaded.recipe)


def plan_study(
    loaded: LoadedRecipe,
    base_overrides: Sequence[tuple[str, Any]],
    workdir: Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    new_study: bool = False,
) -> TunePlan:
    """Check the recipe's search space against the recipe and settle where the study lives.

    Args:
        loaded: the recipe, command-line overrides applied.
        base_overrides: those overrides, to validate every proposed value with them.
        workdir: the folder holding data/ and runs/.
        storage: a database URL; default: ``runs/<recipe>/tune/study.db``.
        study_name: default: ``tune.study_name``, else the recipe's name.
        jobs: trials to run at once in this process.
        new_study: start a fresh study under a free name derived from the study's name
            (``<name>-2``, …) rather than resuming it.

    Raises:
        RecipeError: no tune section, or a space that cannot produce valid recipes.
        UsageError: a bad ``jobs`` or study name.
    """
    recipe = loaded.recipe
    spec = recipe.tune
    if spec is None:
        raise RecipeError(
            f"Recipe {loaded.path} has no `tune:` section, so there is nothing to search. Add "
            f"one naming the objective and the fields to tune, for example\n  tune:\n"
            f"    objective: val_accuracy\n    num_trials: 20\n    space:\n"
            f"      train.optimizer.learning_rate: {{log_uniform: [1.0e-4, 1.0e-2]}}\n"
            f"      model.dropout: {{uniform: [0.1, 0.6]}}\n(see the README's recipe reference)."
        )
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1. Received: --jobs {jobs}.")
    name = study_name or spec.study_name or recipe.name
    if not name or "/" in name or name.startswith("."):
        raise UsageError(
            f"--study-name {name!r} cannot name a folder. Use letters, digits, '.', '_', '-'."
        )
    space = SearchSpace.from_spec(spec)
    space.check(loaded.path, base_overrides, spec.sampler)
    grid_size = space.grid_size() if spec.sampler.value == "grid" else None
    num_trials = spec.num_trials
    if grid_size is not None:
        num_trials = grid_size if num_trials is None else min(num_trials, grid_size)
    return TunePlan(
        loaded=loaded,
        spec=spec,
        space=space,
        workdir=workdir,
        storage_url=storage or default_storage(workdir, recipe.name),
        study_name=name,
        study_dir=tune_root(workdir, recipe.name) / name,
        jobs=jobs,
        num_trials=num_trials,
        grid_size=grid_size,
        new_study=new_study,
    )


@dataclass(frozen=True)
class StudyStart:
    """The study as this session found it."""

    plan: TunePlan  # the plan, naming the study actually opened (``--new-study``, or one beside
    # a study of failed trials from another recipe)
    opened: OpenedStudy
    data_prepared: bool  # False: the prepared dataset was already up to date
    existing: int  # trials already in the study
    recovered: list[int]  # trials whose tuner had died, queued again


def check_objective(plan: TunePlan, dataset: PreparedDataset) -> None:
    """Refuse an objective training never logs, before any trial trains (each would fail).

    Raises:
        ObjectiveNotLogged: naming the objective and the names training logs for the task.
    """
    from dltrain.models import training_hooks
    from dltrain.training.losses import logged_names

    task = training_hooks(plan.loaded.recipe.model).task(dataset)
    known = logged_names(task)
    objective = plan.spec.objective
    if objective not in known:
        guess = difflib.get_close_matches(objective, known, n=1)
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        raise ObjectiveNotLogged(
            f"`tune.objective` is {objective!r}, which training does not log for a {task.value} "
            f"task, so every trial would fail after its first epoch.{hint} Set tune.objective "
            f"to one of {', '.join(known)} (val_* score the validation split)."
        )


def start_study(plan: TunePlan) -> StudyStart:
    """Prepare the data once (a no-op when up to date) and open or join the study.

    Raises:
        DataError: the data cannot be prepared.
        RunError: the storage cannot be opened.
        RecipeError: the study exists with a different recipe, and trials that did not fail.
    """
    from dltrain.data.prepare import prepare

    recipe = plan.loaded.recipe
    prepared = prepare(recipe.data, recipe.seed, data_dir(plan.workdir, recipe.name))
    check_objective(plan, prepared.dataset)
    storage = open_storage(plan.storage_url)
    spec, space = plan.spec, plan.space
    pruner = make_pruner(pruner_config(spec, plan.max_epochs))
    with quiet_optuna():
        opened = open_study(
            storage,
            plan.study_name,
            spec,
            study_identity(recipe, spec),
            make_sampler(spec, space, recipe.seed),
            pruner,
            new=plan.new_study,
        )
        if opened.name != plan.study_name:
            plan = replace(
                plan,
                study_name=opened.name,
                study_dir=tune_root(plan.workdir, recipe.name) / opened.name,
            )
        if not opened.created:
            # Resuming or joining: draw a fresh sequence, or two tuners would propose the same
            # parameters (and a resumed random search would repeat its first trials).
            opened.study.sampler = make_sampler(
                spec, space, joining_seed(recipe.seed, opened.study)
            )
        existing = len(opened.study.trials)
        recovered = recover_stale_trials(opened.study)
    write_text_atomic(plan.files.base_recipe, plan.loaded.to_yaml())
    return StudyStart(plan, opened, not prepared.up_to_date, existing, recovered)
