"""Recipes: typed, validated YAML saying what data, which model, how to train and judge.

The names below load on first use (PEP 562), so importing a light submodule such as
``dltrain.recipe.choices`` for ``dltrain --help`` does not build every pydantic model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dltrain.recipe.load import (
        LoadedRecipe,
        find_recipe,
        load_recipe,
        load_recipe_dict,
        parse_assignment,
        read_recipe_yaml,
    )
    from dltrain.recipe.schema import Recipe

_HOMES = {
    "LoadedRecipe": "dltrain.recipe.load",
    "find_recipe": "dltrain.recipe.load",
    "load_recipe": "dltrain.recipe.load",
    "load_recipe_dict": "dltrain.recipe.load",
    "parse_assignment": "dltrain.recipe.load",
    "read_recipe_yaml": "dltrain.recipe.load",
    "Recipe": "dltrain.recipe.schema",
}

__all__ = [
    "LoadedRecipe",
    "Recipe",
    "find_recipe",
    "load_recipe",
    "load_recipe_dict",
    "parse_assignment",
    "read_recipe_yaml",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dltrain.recipe' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
