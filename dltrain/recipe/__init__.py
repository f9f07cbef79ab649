"""Recipes: typed, validated YAML saying what data, which model, how to train and judge."""

from dltrain.recipe.load import (
    LoadedRecipe,
    find_recipe,
    load_recipe,
    load_recipe_dict,
    parse_assignment,
    read_recipe_yaml,
)
from dltrain.recipe.schema import Recipe

__all__ = [
    "LoadedRecipe",
    "Recipe",
    "find_recipe",
    "load_recipe",
    "load_recipe_dict",
    "parse_assignment",
    "read_recipe_yaml",
]
