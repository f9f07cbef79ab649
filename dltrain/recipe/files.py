"""Where recipes are found by convention (light: the CLI and runs.py name them at import)."""

DEFAULT_RECIPE = "dltrain.yaml"  # in the working directory: the recipe when none is given
RECIPES_FOLDER = "recipes"  # `--recipe NAME` finds recipes/NAME.yaml
