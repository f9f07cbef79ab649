"""The search space at run time: sampling through an Optuna trial, grids, and recipe checks.

Optuna stores a parameter under its dotted recipe path (``model.dropout``), so the study reads
naturally in Optuna's own tools. Choices that are lists or mappings (``model.filters: [[32, 64],
[64, 128]]``) are stored as their JSON text, since Optuna's categorical values must be scalars.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import JsonValue

from dltrain.errors import RecipeError
from dltrain.recipe import load_recipe
from dltrain.recipe.schema import Recipe
from dltrain.recipe.tune import ParamKind, ParamSpec, SamplerName, TuneSpec, order_parameters

_SCALARS = (type(None), bool, int, float, str)

# One drawn configuration: recipe path → recipe value (a number, a string, or a list or mapping
# choice), what a trial is known by in the study, its spec, its run.json and the reports.
Params = dict[str, JsonValue]


class SuggestingTrial(Protocol):
    """The part of ``optuna.Trial`` the space uses (tests may pass a stand-in)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class SearchSpace:
    """A validated ``tune.space`` in sampling order (conditions after what they refer to)."""

    params: dict[str, ParamSpec]

    @classmethod
    def from_spec(cls, spec: TuneSpec) -> SearchSpace:
        return cls({path: spec.space[path] for path in order_parameters(spec.space)})

    def suggest(self, trial: SuggestingTrial) -> Params:
        """Draw one configuration: recipe path → recipe value, active parameters only."""
        values: Params = {}
        for path, param in self.params.items():
            if not self.is_active(param, values):
                continue
            if param.kind is ParamKind.CHOICE:
                raw = trial.suggest_categorical(path, self.encoded_choices(path))
                values[path] = self.decode(path, raw)
            elif param.kind in (ParamKind.UNIFORM, ParamKind.LOG_UNIFORM):
                assert param.low is not None and param.high is not None
                log = param.kind is ParamKind.LOG_UNIFORM
                high = param.grid_values()[-1] if param.step else param.high
                value = trial.suggest_float(path, param.low, high, step=param.step, log=log)
                values[path] = self.decode(path, value)
            else:
                assert param.low is not None and param.high is not None
                log = param.kind is ParamKind.LOG_INT
                step = int(param.step or 1)
                high = param.grid_values()[-1] if not log else int(param.high)
                values[path] = trial.suggest_int(path, int(param.low), high, step=step, log=log)
        return values

    @staticmethod
    def is_active(param: ParamSpec, values: Params) -> bool:
        """Whether ``param``'s conditions hold for the values drawn so far."""
        return all(
            other in values and values[other] in allowed
            for other, allowed in (param.when or {}).items()
        )

    def encoded_choices(self, path: str) -> list[Any]:
        choices = self.params[path].choices or []
        if all(isinstance(c, _SCALARS) for c in choices):
            return list(choices)
        return [json.dumps(c) for c in choices]

    def decode(self, path: str, raw: Any) -> Any:
        """A value as Optuna stores it → the recipe value it stands for."""
        param = self.params.get(path)
        if param is None:
            return raw
        if param.kind is ParamKind.UNIFORM and param.step and isinstance(raw, float):
            return round(raw, 12)  # 0.30000000000000004 → 0.3, as the user wrote the step
        if param.kind is not ParamKind.CHOICE:
            return raw
        choices = param.choices or []
        encoded = self.encoded_choices(path)
        if encoded == choices or not isinstance(raw, str):
            return raw  # scalar choices are stored as themselves
        return choices[encoded.index(raw)] if raw in encoded else json.loads(raw)

    def decode_all(self, params: Mapping[str, object]) -> Params:
        """An Optuna trial's ``params`` → recipe path → recipe value."""
        return {path: self.decode(path, raw) for path, raw in params.items()}

    def grid(self) -> dict[str, list[Any]]:
        """The search space for Optuna's GridSampler.

        Raises:
            RecipeError: a continuous range, or a conditional parameter (a grid enumerates every
                combination, so a parameter that is sometimes absent would repeat trials).
        """
        grid: dict[str, list[Any]] = {}
        for path, param in self.params.items():
            if not param.is_discrete:
                low, high = param.low, param.high
                raise RecipeError(
                    f"The grid sampler needs every parameter to take a finite list of values, "
                    f"but `tune.space.{path}` is a continuous range ({param.kind.value}: "
                    f"[{low:g}, {high:g}]). Give it a step ({{uniform: [{low:g}, {high:g}], step: "
                    f"...}}), make it a choice, or use --sampler tpe / random / qmc."
                )
            if param.when:
                raise RecipeError(
                    f"The grid sampler enumerates every combination, so the conditional "
                    f"parameter `tune.space.{path}` (when: {dict(param.when)}) would repeat "
                    f"trials. Remove its `when`, or use --sampler tpe or random."
                )
            if param.kind is ParamKind.CHOICE:
                grid[path] = self.encoded_choices(path)
            else:
                grid[path] = param.grid_values()
        return grid

    def grid_size(self) -> int:
        size = 1
        for values in self.grid().values():
            size *= len(values)
        return size

    def max_epochs(self, recipe: Recipe) -> int:
        """The most epochs any trial can train (what pruners count their rungs up to)."""
        param = self.params.get("train.epochs")
        if param is None:
            return recipe.train.epochs
        return int(max(param.extremes()))

    def check(
        self,
        recipe_path: Path,
        base_overrides: Sequence[tuple[str, Any]],
        sampler: SamplerName,
    ) -> None:
        """Reject a space that cannot produce valid recipes, before any trial runs.

        Every choice and both ends of every range are applied to the recipe (with the values the
        parameter's conditions need) and validated as ``dltrain train`` would.

        Args:
            recipe_path: the recipe file.
            base_overrides: the command line's overrides, applied first.
            sampler: the sampler; ``grid`` also needs a finite space.

        Raises:
            RecipeError: an empty space, a path the recipe does not have, a value it refuses.
        """
        if not self.params:
            raise RecipeError(
                f"Recipe {recipe_path} has nothing to tune: `tune.space` is empty. Add the "
                f"recipe fields to search, for example\n  tune:\n    space:\n"
                f"      train.optimizer.learning_rate: {{log_uniform: [1.0e-4, 1.0e-2]}}\n"
                f"      model.dropout: {{uniform: [0.1, 0.6]}}"
            )
        if sampler is SamplerName.GRID:
            self.grid()
        for path, param in self.params.items():
            context = self._condition_values(param)
            for value in param.extremes():
                try:
                    load_recipe(recipe_path, [*base_overrides, *context, (path, value)])
                except RecipeError as exc:
                    raise RecipeError(
                        f"The search space in {recipe_path} is not valid: `tune.space.{path}` "
                        f"can propose {value!r}, which the recipe refuses: "
                        f"{refusal_reason(exc)} Fix the range or choices of `{path}` (check "
                        f"with dltrain tune --dry-run)."
                    ) from None

    def _condition_values(self, param: ParamSpec) -> list[tuple[str, Any]]:
        """Overrides that make ``param`` active: the first allowed value of each condition."""
        pairs: list[tuple[str, Any]] = []
        for other, allowed in (param.when or {}).items():
            pairs.extend(self._condition_values(self.params[other]))
            pairs.append((other, allowed[0]))
        return pairs


def ordered_overrides(values: Params) -> list[tuple[str, Any]]:
    """Overrides in an order that lets a whole section be chosen and then refined."""
    return sorted(values.items(), key=lambda item: item[0].count("."))


def refusal_reason(exc: RecipeError) -> str:
    """The sentences of a recipe error that say what is wrong, without its frame."""
    text = exc.message.replace(" (given on the command line)", "")
    _, found, rest = text.partition(" is not valid: ")
    if found:
        text = rest
    return text.split(" Fix the recipe (or the flag)", 1)[0].strip()
