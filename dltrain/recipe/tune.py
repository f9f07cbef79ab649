"""The recipe's `tune` section: what to optimise, how to search, and the search space.

A search space addresses ordinary recipe fields by dotted path, so anything a recipe can say can
be tuned without new vocabulary::

    tune:
      objective: val_accuracy
      num_trials: 30
      space:
        train.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
        model.dropout: {uniform: [0.1, 0.6]}
        train.batch_size: {choice: [64, 128, 256]}
        model.filters: [[32, 64], [64, 128]]          # a bare list is a choice
        train.epochs: {int: [4, 12], step: 4}
        train.optimizer.name: {choice: [adam, momentum]}
        train.optimizer.momentum: {uniform: [0.8, 0.99], when: {train.optimizer.name: momentum}}

Light: this module validates the shape of the space (ranges, steps, conditions, reserved paths);
whether each proposed value is a valid recipe is checked against the recipe in
``dltrain.tuning.space`` before any trial runs.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from dltrain.recipe.choices import ParamKind, PrunerName, SamplerName
from dltrain.recipe.fields import Duration
from dltrain.recipe.section import Section

DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

# Paths a search may not touch, and why (the sentence ends the error message).
RESERVED_PATHS = {
    "name": "it names the prepared data and the runs folder every trial shares",
    "description": "it does not change training",
    "seed": "it fixes the data splits, so every trial must share it to reuse the prepared data "
    "(to average over seeds, run the study again with --set seed=N and a new --study-name)",
    "data": "every trial reuses the one prepared dataset; a different data section would need "
    "its own `dltrain prepare` (make a recipe per data variant and tune each)",
    "tune": "the search cannot tune itself",
    "evaluate": "it does not change training, so it cannot change the objective",
}


RANGE_KINDS = (ParamKind.UNIFORM, ParamKind.LOG_UNIFORM, ParamKind.INT, ParamKind.LOG_INT)
_KEYS = [*(k.value for k in ParamKind), "step", "when"]


class ParamSpec(BaseModel):
    """One dimension of the search: a distribution, an optional step and an optional condition.

    Written in a recipe as ``{uniform: [0.1, 0.5], step: 0.1}``, ``{log_uniform: [1e-4, 1e-2]}``,
    ``{int: [16, 128], step: 16}``, ``{choice: [64, 128]}`` (or a bare list), with an optional
    ``when: {other.path: value-or-list}`` that samples it only when another (choice) parameter
    took one of those values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: ParamKind
    low: float | None = None
    high: float | None = None
    choices: list[Any] | None = None
    step: float | None = None
    when: dict[str, list[Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_recipe_syntax(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = {"choice": value}
        if not isinstance(value, dict):
            raise ValueError(
                "expected a distribution such as {uniform: [0.1, 0.5]}, {log_uniform: [1.0e-4, "
                "1.0e-2]}, {int: [16, 128], step: 16} or {choice: [64, 128]} (a bare list is a "
                f"choice). Received: {value!r}"
            )
        if "kind" in value:  # already in the internal form
            return value
        unknown = [k for k in value if k not in _KEYS]
        if unknown:
            guess = difflib.get_close_matches(str(unknown[0]), _KEYS, n=1, cutoff=0.6)
            hint = f" Did you mean `{guess[0]}`?" if guess else ""
            raise ValueError(
                f"unknown key `{unknown[0]}`.{hint} A parameter takes one of "
                f"{', '.join(k.value for k in ParamKind)}, plus optional step and when"
            )
        kinds = [k for k in ParamKind if k.value in value]
        if len(kinds) != 1:
            given = ", ".join(k.value for k in kinds) or "none"
            raise ValueError(
                f"give exactly one of {', '.join(k.value for k in ParamKind)}. Received: {given}"
            )
        kind = kinds[0]
        out: dict[str, Any] = {"kind": kind, "step": value.get("step")}
        if "when" in value:
            out["when"] = _conditions(value["when"])
        raw = value[kind.value]
        if kind is ParamKind.CHOICE:
            if not isinstance(raw, list) or not raw:
                raise ValueError(f"`choice` takes a non-empty list of values. Received: {raw!r}")
            out["choices"] = raw
        else:
            bounds = raw if isinstance(raw, list | tuple) else None
            if bounds is None or len(bounds) != 2:
                raise ValueError(f"`{kind.value}` takes [low, high]. Received: {raw!r}")
            out["low"], out["high"] = (_number(kind, b) for b in bounds)
        return out

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        kind = self.kind
        if kind is ParamKind.CHOICE:
            if self.step is not None:
                raise ValueError("`step` applies to ranges, not to a choice")
            seen: list[Any] = []
            for choice in self.choices or []:
                if choice in seen:
                    raise ValueError(f"`choice` lists {choice!r} twice; list each value once")
                seen.append(choice)
            return self
        low, high = self.low, self.high
        assert low is not None and high is not None  # set by _from_recipe_syntax
        if not low < high:
            raise ValueError(
                f"the range is empty: low must be below high. Received: {kind.value}: "
                f"[{_fmt(low)}, {_fmt(high)}] (to fix a value, set it in the recipe instead)"
            )
        if kind in (ParamKind.LOG_UNIFORM, ParamKind.LOG_INT) and low <= 0:
            raise ValueError(
                f"`{kind.value}` needs low > 0 (a log scale has no zero). "
                f"Received: [{_fmt(low)}, {_fmt(high)}]"
            )
        if self.step is not None:
            if kind in (ParamKind.LOG_UNIFORM, ParamKind.LOG_INT):
                raise ValueError(f"`step` cannot be combined with `{kind.value}`")
            if kind is ParamKind.INT and self.step != int(self.step):
                raise ValueError(
                    f"`step` of an `int` range must be an integer. Received: {self.step}"
                )
            if not 0 < self.step <= high - low:
                raise ValueError(
                    f"`step` must be > 0 and at most high - low ({_fmt(high - low)}). "
                    f"Received: step={_fmt(self.step)}"
                )
        return self

    @model_serializer
    def _to_recipe_syntax(self) -> dict[str, Any]:
        if self.kind is ParamKind.CHOICE:
            out: dict[str, Any] = {"choice": self.choices}
        else:
            low, high = self.low, self.high
            if self.kind in (ParamKind.INT, ParamKind.LOG_INT):
                low, high = int(low or 0), int(high or 0)
            out = {self.kind.value: [low, high]}
        if self.step is not None:
            out["step"] = int(self.step) if self.kind is ParamKind.INT else self.step
        if self.when:
            out["when"] = {k: v[0] if len(v) == 1 else v for k, v in self.when.items()}
        return out

    @property
    def is_discrete(self) -> bool:
        """Whether a grid can enumerate it: a choice, an integer range or a stepped range."""
        return self.kind in (ParamKind.CHOICE, ParamKind.INT) or self.step is not None

    def grid_values(self) -> list[Any]:
        """Every value a grid search visits, in order (in recipe terms).

        Raises:
            ValueError: the parameter is continuous (no step).
        """
        if self.kind is ParamKind.CHOICE:
            return list(self.choices or [])
        if not self.is_discrete:
            raise ValueError("a continuous range has no grid")
        assert self.low is not None and self.high is not None
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        if self.kind in (ParamKind.INT, ParamKind.LOG_INT):
            return [int(round(v)) for v in values]
        return [round(v, 12) for v in values]

    def extremes(self) -> list[Any]:
        """The values that bound what this parameter can propose (every choice, or both ends)."""
        if self.kind is ParamKind.CHOICE:
            return list(self.choices or [])
        if self.is_discrete:
            values = self.grid_values()
            return [values[0], values[-1]]
        return [self.low, self.high]


def _number(kind: ParamKind, value: Any) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"`{kind.value}` bounds must be finite numbers. Received: {value!r}")
    if kind in (ParamKind.INT, ParamKind.LOG_INT) and value != int(value):
        raise ValueError(f"`{kind.value}` bounds must be integers. Received: {value!r}")
    return float(value)


def _conditions(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not value:
        raise ValueError(
            "`when` takes a mapping from another parameter's path to the value (or list of "
            "values) it must take, e.g. when: {train.optimizer.name: [momentum, nesterov]}. "
            f"Received: {value!r}"
        )
    return {str(k): (v if isinstance(v, list) else [v]) for k, v in value.items()}


def _fmt(value: float) -> str:
    return f"{value:g}"


class Direction(StrEnum):
    AUTO = "auto"  # minimise losses and errors, maximise everything else
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


_MINIMISED = re.compile(r"(loss|error|mse|mae|rmse|mape|seconds)$")


class TuneSpec(Section):
    """What `dltrain tune` optimises, how long, how it searches and prunes, and over what."""

    objective: str = Field(
        "val_accuracy",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="A metric training logs each epoch (val_accuracy, val_loss, …); a trial "
        "scores its best epoch.",
    )
    direction: Direction = Direction.AUTO
    num_trials: int | None = Field(
        20, gt=0, le=1_000_000, description="Trials in the whole study, every worker counted."
    )
    timeout: Duration | None = Field(
        None, description="Seconds (or 90m, 2h, 1d) after which no new trial starts."
    )
    sampler: SamplerName = SamplerName.TPE
    pruner: PrunerName = PrunerName.HYPERBAND
    min_epochs: int = Field(1, ge=1, description="No trial is pruned before this many epochs.")
    reduction_factor: int = Field(
        3, ge=2, description="hyperband / successive halving: keep the top 1/this at each rung."
    )
    trial_timeout: Duration | None = Field(
        None,
        description="A trial running longer (seconds, or 30m) is stopped and recorded as failed.",
    )
    max_consecutive_failures: int = Field(
        5, ge=0, description="Stop after this many failed trials in a row (0: never stop)."
    )
    study_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    folds: int | None = Field(
        None,
        ge=2,
        le=100,
        description="Score each trial by K-fold cross-validation (the mean over folds of the "
        "objective's best epoch) instead of one validation split; for small data. Nothing is "
        "pruned.",
    )
    space: dict[str, ParamSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounded(self) -> TuneSpec:
        if self.num_trials is None and self.timeout is None:
            raise ValueError(
                "set `num_trials`, `timeout` or both; with neither the search would never end"
            )
        return self

    @field_validator("space")
    @classmethod
    def _check_space(cls, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for path, param in space.items():
            _check_path(path)
            for other, values in (param.when or {}).items():
                target = space.get(other)
                if other == path or target is None or target.kind is not ParamKind.CHOICE:
                    raise ValueError(
                        f"`space.{path}.when` refers to `{other}`, which must be another `choice` "
                        f"parameter of the space. Choice parameters: "
                        f"{', '.join(_choice_paths(space, path)) or 'none'}"
                    )
                missing = [v for v in values if v not in (target.choices or [])]
                if missing:
                    raise ValueError(
                        f"`space.{path}.when` expects `{other}` to be {missing[0]!r}, which is not "
                        f"among its choices {target.choices}"
                    )
        order_parameters(space)  # raises on a cycle of conditions
        return space

    @property
    def resolved_direction(self) -> Direction:
        """``maximize`` or ``minimize``: ``auto`` minimises losses and errors."""
        if self.direction is not Direction.AUTO:
            return self.direction
        minimise = _MINIMISED.search(self.objective.lower())
        return Direction.MINIMIZE if minimise else Direction.MAXIMIZE


def _check_path(path: str) -> None:
    if not DOTTED_PATH.fullmatch(path):
        raise ValueError(
            f"space key {path!r} is not a dotted recipe path such as train.optimizer.learning_rate"
        )
    head = path.split(".")[0]
    if path in RESERVED_PATHS or head in RESERVED_PATHS:
        reason = RESERVED_PATHS.get(path) or RESERVED_PATHS[head]
        raise ValueError(f"`{path}` cannot be tuned: {reason}")


def _choice_paths(space: dict[str, ParamSpec], exclude: str) -> list[str]:
    return [p for p, s in space.items() if s.kind is ParamKind.CHOICE and p != exclude]


def order_parameters(space: dict[str, ParamSpec]) -> list[str]:
    """The space's paths in sampling order: each after the parameters its `when` refers to.

    Raises:
        ValueError: conditions that refer to each other in a cycle.
    """
    ordered: list[str] = []
    pending = list(space)
    while pending:
        ready = [p for p in pending if all(o in ordered for o in (space[p].when or {}))]
        if not ready:
            raise ValueError(
                f"the `when` conditions of {', '.join(pending)} refer to each other in a cycle"
            )
        ordered.extend(ready)
        pending = [p for p in pending if p not in ready]
    return ordered
