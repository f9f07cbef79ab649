"""The search space: parsing, validation against the recipe, and sampling through Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from dltrain.errors import RecipeError
from dltrain.recipe import load_recipe
from dltrain.recipe.tune import ParamKind, SamplerName
from dltrain.tuning.space import SearchSpace, ordered_overrides

BASE = {
    "name": "t",
    "data": {"source": "raw"},
    "model": {"family": "cnn", "filters": [4], "dense": [8]},
    "train": {"epochs": 4, "optimizer": {"name": "adam"}},
}


def write(tmp_path: Path, space: Any, **tune: Any) -> Path:
    recipe = {**BASE, "tune": {"num_trials": 5, **tune, "space": space}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def space_of(path: Path) -> SearchSpace:
    spec = load_recipe(path).recipe.tune
    assert spec is not None
    return SearchSpace.from_spec(spec)


FULL_SPACE = {
    "train.optimizer.learning_rate": {"log_uniform": ["1e-4", 1.0e-2]},  # YAML 1.1 string too
    "model.dropout": {"uniform": [0.1, 0.5], "step": 0.1},
    "train.batch_size": [32, 64, 128],
    "model.filters": {"choice": [[4], [8, 16]]},
    "train.epochs": {"int": [2, 6], "step": 2},
    "model.dense": {"choice": [[8], [16]]},
    "train.optimizer.name": {"choice": ["adam", "momentum"]},
    "train.optimizer.momentum": {
        "uniform": [0.8, 0.99],
        "when": {"train.optimizer.name": "momentum"},
    },
}


def test_every_kind_parses_and_the_resolved_recipe_round_trips(tmp_path: Path) -> None:
    loaded = load_recipe(write(tmp_path, FULL_SPACE, timeout="1h30m"))
    tune = loaded.recipe.tune
    assert tune is not None and tune.timeout == 5400.0
    kinds = {path: p.kind for path, p in tune.space.items()}
    assert kinds["train.optimizer.learning_rate"] is ParamKind.LOG_UNIFORM
    assert kinds["train.batch_size"] is ParamKind.CHOICE  # a bare list is a choice
    assert tune.space["train.optimizer.learning_rate"].low == pytest.approx(1e-4)
    assert tune.space["train.epochs"].grid_values() == [2, 4, 6]
    assert tune.space["model.dropout"].grid_values() == [0.1, 0.2, 0.3, 0.4, 0.5]
    again = tmp_path / "again.yaml"
    again.write_text(loaded.to_yaml())  # what every run folder and best.yaml hold
    assert load_recipe(again).recipe.tune == tune
    assert "int:" in loaded.to_yaml() and "kind:" not in loaded.to_yaml()


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"model.dropout": {"unifrom": [0.1, 0.2]}}, "Did you mean `uniform`?"),
        ({"model.dropout": {"uniform": [0.5, 0.1]}}, "the range is empty"),
        ({"model.dropout": {"uniform": [0.3, 0.3]}}, "the range is empty"),
        ({"model.dropout": {"uniform": [0.1]}}, "takes [low, high]"),
        ({"model.dropout": {"choice": []}}, "non-empty list"),
        ({"model.dropout": {"choice": [0.1, 0.1]}}, "twice"),
        ({"train.optimizer.learning_rate": {"log_uniform": [0, 0.1]}}, "low > 0"),
        ({"train.epochs": {"int": [2, 6], "step": 10}}, "at most high - low"),
        ({"train.epochs": {"int": [2.5, 6]}}, "must be integers"),
        ({"model.dropout": {"uniform": [0.1, 0.2], "choice": [1]}}, "exactly one of"),
        ({"model.dropout": 0.3}, "a bare list is a choice"),
        ({"seed": [1, 2]}, "`seed` cannot be tuned"),
        ({"data.scaling": ["unit", "standard"]}, "every trial reuses the one prepared dataset"),
        ({"name": ["a", "b"]}, "`name` cannot be tuned"),
        ({"Model dropout": [0.1]}, "not a dotted recipe path"),
        (
            {"train.optimizer.momentum": {"uniform": [0.8, 0.9], "when": {"x.y": "a"}}},
            "must be another `choice` parameter",
        ),
        (
            {
                "train.optimizer.name": ["adam", "sgd"],
                "train.optimizer.momentum": {
                    "uniform": [0.8, 0.9],
                    "when": {"train.optimizer.name": "nesterov"},
                },
            },
            "not among its choices",
        ),
        (
            {
                "model.activation": {
                    "choice": ["relu", "gelu"],
                    "when": {"train.optimizer.name": "adam"},
                },
                "train.optimizer.name": {
                    "choice": ["adam", "sgd"],
                    "when": {"model.activation": "relu"},
                },
            },
            "cycle",
        ),
    ],
)
def test_malformed_spaces_are_recipe_errors_naming_the_parameter(
    tmp_path: Path, space: dict[str, Any], needle: str
) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, space))
    assert needle in caught.value.message
    assert "tune.space" in caught.value.message


def test_a_search_needs_a_trial_count_or_a_time_budget(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="num_trials`, `timeout` or both"):
        load_recipe(write(tmp_path, {"model.dropout": [0.1]}, num_trials=None))


@pytest.mark.parametrize(
    ("space", "needles"),
    [
        ({"model.dropuot": {"uniform": [0.1, 0.5]}}, ["model.dropuot", "Did you mean"]),
        ({"train.batch_size": [0, 64]}, ["train.batch_size", "can propose 0"]),
        ({"model.dropout": {"uniform": [0.1, 1.5]}}, ["model.dropout", "can propose 1.5"]),
        ({"model.units": [[8], [16]]}, ["model.units"]),  # an MLP key on a CNN
        ({"train.optimizer.name": ["adam", "adamm"]}, ["'adamm'", "Did you mean"]),
    ],
)
def test_values_the_recipe_refuses_are_rejected_before_any_trial(
    tmp_path: Path, space: dict[str, Any], needles: list[str]
) -> None:
    path = write(tmp_path, space)
    with pytest.raises(RecipeError) as caught:
        space_of(path).check(path, [], SamplerName.TPE)
    message = caught.value.message
    for needle in needles:
        assert needle in message
    assert "is not valid" in message and str(path) in message


def test_conditional_values_are_checked_with_their_condition_met(tmp_path: Path) -> None:
    # momentum=0.95 with adam is fine for the schema too; what matters is that the check applies
    # the condition's value and that an invalid conditional value is still caught.
    space = {
        "train.optimizer.name": ["adam", "momentum"],
        "train.optimizer.momentum": {
            "uniform": [0.5, 1.5],
            "when": {"train.optimizer.name": "momentum"},
        },
    }
    path = write(tmp_path, space)
    with pytest.raises(RecipeError, match="train.optimizer.momentum"):
        space_of(path).check(path, [], SamplerName.TPE)


def test_command_line_overrides_take_part_in_the_check(tmp_path: Path) -> None:
    path = write(tmp_path, {"model.units": [[8], [16]]})  # valid only for an MLP
    space_of(path).check(path, [("model", {"family": "mlp"})], SamplerName.RANDOM)


def test_grid_needs_a_finite_unconditional_space(tmp_path: Path) -> None:
    path = write(tmp_path, {"train.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-2]}})
    with pytest.raises(RecipeError, match="give it a step|Give it a step"):
        space_of(path).check(path, [], SamplerName.GRID)
    path = write(
        tmp_path, {"train.batch_size": [32, 64], "train.epochs": {"int": [2, 6], "step": 2}}
    )
    assert space_of(path).grid_size() == 6


def test_an_empty_space_says_what_to_add(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    with pytest.raises(RecipeError, match="nothing to tune"):
        space_of(path).check(path, [], SamplerName.TPE)


def test_sampling_respects_conditions_steps_and_structured_choices(tmp_path: Path) -> None:
    space = space_of(write(tmp_path, FULL_SPACE))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    names = set()
    for _ in range(40):
        trial = study.ask()
        values = space.suggest(trial)
        study.tell(trial, 0.0)
        names.add(values["train.optimizer.name"])
        assert ("train.optimizer.momentum" in values) == (
            values["train.optimizer.name"] == "momentum"
        )
        assert values["model.filters"] in ([4], [8, 16])  # lists, not their JSON text
        assert values["train.epochs"] in (2, 4, 6)
        assert values["model.dropout"] in (0.1, 0.2, 0.3, 0.4, 0.5)
        assert 1e-4 <= values["train.optimizer.learning_rate"] <= 1e-2
        assert space.decode_all(trial.params) == values
    assert names == {"adam", "momentum"}
    # Overrides apply shallow paths first, so a whole section can be chosen and then refined.
    overrides = ordered_overrides({"train.optimizer.momentum": 0.9, "train.epochs": 2})
    assert [k for k, _ in overrides] == ["train.epochs", "train.optimizer.momentum"]
