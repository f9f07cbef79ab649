"""The Optuna study behind `dltrain tune`: its sampler, pruner, identity and name.

A study records the recipe it was started from; a changed recipe is refused with the keys that
changed and a choice (``--new-study``, ``--study-name``). Where the study lives is storage.py;
its workers and the recovery of a dead one's trials, recovery.py.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from dltrain.credentials import mask_credentials
from dltrain.errors import RecipeError
from dltrain.recipe.schema import Recipe
from dltrain.recipe.tune import Direction, PrunerName, SamplerName, TuneSpec
from dltrain.runs import TUNE_DIR, runs_dir
from dltrain.tuning.protocol import PrunerConfig
from dltrain.tuning.space import SearchSpace

STUDY_ATTR = "dltrain"  # the study's user attribute recording what it was started from
# Recipe fields that may differ between workers and sessions of one study: where the data sits
# on each machine, and how long or how hard this session searches.
_FREE_FIELDS = ("data.source",)
_FREE_TUNE_FIELDS = (
    "num_trials",
    "timeout",
    "trial_timeout",
    "max_consecutive_failures",
    "study_name",
    "sampler",
    "pruner",
    "min_epochs",
    "reduction_factor",
)


def tune_root(workdir: Path, name: str) -> Path:
    """``runs/<recipe>/tune/``: the default study database and one folder per study."""
    return runs_dir(workdir, name) / TUNE_DIR


def default_storage(workdir: Path, name: str) -> str:
    """The embedded SQLite database of recipe ``name``'s studies."""
    return f"sqlite:///{(tune_root(workdir, name) / 'study.db').resolve()}"


def make_sampler(spec: TuneSpec, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler the recipe names, seeded."""
    name = spec.sampler
    if name is SamplerName.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if name is SamplerName.GRID:
        return _GridSampler(space.grid(), seed=seed)
    if name is SamplerName.CMAES:
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,  # choices are drawn at random; CMA-ES needs numbers
        )
    if name is SamplerName.QMC:
        return optuna.samplers.QMCSampler(
            seed=seed,
            scramble=True,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )
    conditional = any(p.when for p in space.params.values())
    # Optuna's default of 10 random start-up trials spends half of a 20-trial budget blind; a
    # third of the budget (at least 3) leaves TPE most of it to model.
    budget = spec.num_trials or 30
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=min(10, max(3, budget // 3)),
        multivariate=True,  # models parameters jointly: learning rate and batch size interact
        group=conditional,  # needed for multivariate TPE over conditional parameters
        constant_liar=True,  # parallel workers avoid proposing what is already running
        warn_independent_sampling=False,
    )


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without stopping an ``optimize`` loop dltrain does not use.

    dltrain's own loop stops when the study holds as many trials as the grid has points.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        return None


def pruner_config(spec: TuneSpec, max_epochs: int) -> PrunerConfig:
    """What a trial process needs to build the same pruner (see ``make_pruner``)."""
    return PrunerConfig(
        name=spec.pruner.value,
        min_epochs=spec.min_epochs,
        max_epochs=max(max_epochs, spec.min_epochs),
        reduction_factor=spec.reduction_factor,
    )


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The pruner a ``pruner_config`` describes; steps are 1-based epochs."""
    name = PrunerName(config["name"])
    low, high, factor = config["min_epochs"], config["max_epochs"], config["reduction_factor"]
    if name is PrunerName.HYPERBAND:
        return optuna.pruners.HyperbandPruner(
            min_resource=low, max_resource=high, reduction_factor=factor
        )
    if name is PrunerName.SUCCESSIVE_HALVING:
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=low, reduction_factor=factor)
    if name is PrunerName.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=low)
    return optuna.pruners.NopPruner()


def study_identity(recipe: Recipe, spec: TuneSpec) -> dict[str, Any]:
    """What makes two sessions the same study: the recipe as trained, the objective, the space.

    Where the data sits and how long a session runs may differ between sessions and machines.
    """
    document = recipe.model_dump(mode="json")
    for dotted in _FREE_FIELDS:
        section, key = dotted.split(".")
        document[section].pop(key, None)
    tune = document.pop("tune") or {}
    for key in _FREE_TUNE_FIELDS:
        tune.pop(key, None)
    tune["direction"] = spec.resolved_direction.value
    return {"recipe": document, "tune": tune}


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [prefix.rstrip(".")]


@dataclass(frozen=True)
class OpenedStudy:
    study: optuna.Study
    storage: optuna.storages.RDBStorage
    created: bool  # this process created it (rather than joining or resuming it)
    # Studies of the requested name and its ``-2``, ``-3``, … passed over on the way: each was
    # started from another recipe and has nothing but failed trials (see ``open_study``).
    passed_over: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.study.study_name


# How far ``<name>-2``, ``<name>-3``, … are tried before giving up (a runaway loop, not a limit
# anyone reaches by hand).
_MAX_SUFFIX = 1000


def _derived_names(name: str) -> Iterator[str]:
    """``name-2``, ``name-3``, …: the names a fresh study beside ``name`` takes, in order."""
    for number in range(2, _MAX_SUFFIX + 1):
        yield f"{name}-{number}"


def free_study_name(storage: optuna.storages.RDBStorage, name: str) -> str:
    """The first of ``name``, ``name-2``, ``name-3``, … that no study in ``storage`` has."""
    taken = {s.study_name for s in storage.get_all_studies()}
    return next((n for n in (name, *_derived_names(name)) if n not in taken), f"{name}-new")


def open_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    spec: TuneSpec,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    *,
    new: bool = False,
) -> OpenedStudy:
    """Create the study, or join it if it exists and was started from the same recipe.

    A study of that name started from another recipe blocks it (its trials are not comparable
    with this recipe's) unless every one of its trials failed: then there is nothing to compare,
    and the first of ``name-2``, ``name-3``, … that is free or matches this recipe is opened
    instead, leaving the failed study as it was (its logs say why it failed). The same recipe
    run again finds the same study, so sessions and workers still meet.

    Args:
        storage: the study database.
        name: the study's name.
        spec: the tune section (for the direction).
        identity: ``study_identity`` of this session's recipe.
        sampler: the sampler (a process joining a study should then reseed it, see
            ``joining_seed``).
        pruner: the pruner.
        new: start a fresh study: ``name`` if free, else the first free ``name-2``, ``name-3``, …
            (``--new-study``).

    Raises:
        RecipeError: a study of that name was started from another recipe, objective or space,
            and holds trials that did not fail.
    """
    if new:
        name = free_study_name(storage, name)
    opened, changed = _open_or_join(storage, name, spec, identity, sampler, pruner)
    if opened is not None:
        return opened
    passed: list[str] = []
    study = optuna.load_study(study_name=name, storage=storage)
    if any(t.state is not TrialState.FAIL for t in study.get_trials(deepcopy=False)):
        raise _changed_recipe(storage, name, changed, study)
    passed.append(name)
    for candidate in _derived_names(name):
        opened, _ = _open_or_join(storage, candidate, spec, identity, sampler, pruner)
        if opened is not None:
            return OpenedStudy(opened.study, storage, opened.created, tuple(passed))
        passed.append(candidate)
    raise RecipeError(  # pragma: no cover - a thousand studies of one recipe
        f"Studies '{name}' to '{name}-{_MAX_SUFFIX}' were all started from other recipes. "
        f"Name this one with --study-name."
    )


def _open_or_join(
    storage: optuna.storages.RDBStorage,
    name: str,
    spec: TuneSpec,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[OpenedStudy | None, list[str]]:
    """The study ``name`` created or joined; or None and what changed since it was started.

    Raises:
        RecipeError: a study of that name that dltrain did not create holds trials.
    """
    direction: Literal["minimize", "maximize"] = (
        "maximize" if spec.resolved_direction is Direction.MAXIMIZE else "minimize"
    )
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=direction, sampler=sampler, pruner=pruner
        )
        study.set_user_attr(STUDY_ATTR, identity)
        return OpenedStudy(study, storage, created=True), []
    except DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    recorded = _wait_for_identity(study)
    if recorded is None:
        if study.trials:
            shown = mask_credentials(storage.url, storage.url)
            raise RecipeError(
                f"Study '{name}' in {shown} was not created by dltrain tune (it has no record of "
                f"its recipe), so its trials cannot be resumed from this recipe. "
                f"{_choices(storage, name)}"
            )
        if study.direction.name.lower() == direction:
            study.set_user_attr(STUDY_ATTR, identity)
            return OpenedStudy(study, storage, created=False), []
        recorded = {}
    changed = [c.removeprefix("recipe.") for c in _differences(recorded, identity)]
    if study.direction.name.lower() != direction and "tune.direction" not in changed:
        changed.append("tune.direction")
    if not changed:
        return OpenedStudy(study, storage, created=False), []
    return None, changed


def _choices(storage: optuna.storages.RDBStorage, name: str) -> str:
    """What the user can do about a study that blocks this recipe: the same words everywhere."""
    shown = mask_credentials(storage.url, storage.url)
    return (
        f"Start a fresh study beside it with --new-study (it will be named "
        f"'{free_study_name(storage, name)}'), name another one with --study-name NAME, or "
        f"delete the old one with `optuna delete-study --storage {shown} --study-name {name}`."
    )


def _changed_recipe(
    storage: optuna.storages.RDBStorage, name: str, changed: list[str], study: optuna.Study
) -> RecipeError:
    shown = mask_credentials(storage.url, storage.url)
    listed = ", ".join(f"`{c}`" for c in changed[:8]) + (" …" if len(changed) > 8 else "")
    kept = sum(t.state is not TrialState.FAIL for t in study.get_trials(deepcopy=False))
    return RecipeError(
        f"Study '{name}' in {shown} was started from a different recipe: {listed} changed "
        f"since. Its {kept} trial(s) that did not fail would not be comparable with new ones. "
        f"Change the recipe back to resume it. {_choices(storage, name)}"
    )


def _wait_for_identity(study: optuna.Study) -> Any:
    # A worker that starts at the same moment as the study's creator may look before the creator
    # has recorded the recipe; give it a few seconds.
    for _ in range(20):
        recorded = study.user_attrs.get(STUDY_ATTR)
        if recorded is not None or study.trials:
            return recorded
        time.sleep(0.25)
        study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    return None


def joining_seed(seed: int, study: optuna.Study) -> int:
    """A sampler seed for a worker joining or resuming a study: differs per process and session."""
    text = f"{seed}:{len(study.trials)}:{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Whether a trial uses up one of ``num_trials``: all do but those cut short and requeued."""
    if trial.state is TrialState.FAIL:
        return "fail_reason" in trial.user_attrs and not trial.user_attrs.get("interrupted")
    return True


def budget_used(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False))
