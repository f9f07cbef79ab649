"""Find, read, override and validate a recipe, turning every mistake into one clear paragraph."""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from dltrain.errors import RecipeError, UsageError
from dltrain.recipe.files import DEFAULT_RECIPE, RECIPES_FOLDER
from dltrain.recipe.models import ModelSpec
from dltrain.recipe.schema import Recipe
from dltrain.recipe.yaml_reader import RecipeYamlError, load_yaml


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and where it came from."""

    recipe: Recipe
    path: Path

    def to_yaml(self) -> str:
        """The fully resolved recipe, as written into every run folder."""
        return yaml.safe_dump(self.recipe.model_dump(mode="json"), sort_keys=False)


def find_recipe(given: str | Path | None, cwd: Path | None = None) -> Path:
    """Locate the recipe file the user means.

    Args:
        given: ``--recipe`` as typed: a path, or the name of a recipe in ``recipes/``;
            ``None`` means ``dltrain.yaml`` in the working directory.
        cwd: the working directory (defaults to the process's).

    Raises:
        RecipeError: nothing readable is there.
    """
    cwd = cwd or Path.cwd()
    if given is None:
        path = cwd / DEFAULT_RECIPE
        if not path.is_file():
            raise RecipeError(
                f"No recipe was given and there is no {DEFAULT_RECIPE} in {cwd}. dltrain needs a "
                f"recipe (YAML) saying what data to use and how to train. Pass one with "
                f"--recipe FILE, or run the command from a folder holding {DEFAULT_RECIPE}."
            )
        return path
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = cwd / path
    if path.is_file():
        return path
    named = cwd / RECIPES_FOLDER / f"{given}.yaml"
    if named.is_file():
        return named
    if path.is_dir():
        inside = path / DEFAULT_RECIPE
        hint = f" It holds {DEFAULT_RECIPE}: pass --recipe {inside}." if inside.is_file() else ""
        raise RecipeError(
            f"--recipe {given} is a folder ({path}), not a recipe file. Expected a YAML recipe "
            f"file or the name of one in {RECIPES_FOLDER}/.{hint}"
        )
    available = sorted(p.stem for p in (cwd / RECIPES_FOLDER).glob("*.yaml"))
    hint = f" Recipes in {RECIPES_FOLDER}/: {', '.join(available)}." if available else ""
    raise RecipeError(
        f"Recipe file {given} does not exist (looked for {path}). Expected a YAML recipe file or "
        f"the name of one in {RECIPES_FOLDER}/. Check the path.{hint}"
    )


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse one ``--set dotted.key=value``; the value is read as YAML (``256``, ``[32, 64]``).

    Raises:
        UsageError: no ``=``, or an empty or malformed key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise UsageError(
            f"--set expects dotted.key=value, for example --set train.batch_size=256. "
            f"Received: {text!r}."
        )
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecipeYamlError):
        value = raw
    return key, value


def load_recipe(
    path: Path,
    overrides: typing.Sequence[tuple[str, Any]] = (),
    cwd: Path | None = None,
) -> LoadedRecipe:
    """Read a recipe file, apply command-line overrides and validate the result.

    Relative ``data.source`` paths in the file are read from the file's folder; one given on the
    command line is read from the working directory, as a shell user expects.

    Args:
        path: the recipe file.
        overrides: ``(dotted.key, value)`` pairs from flags and ``--set``, applied in order.
        cwd: the working directory for command-line paths.

    Raises:
        RecipeError: unreadable YAML, an unknown key, a value out of range.
    """
    return load_recipe_dict(read_recipe_yaml(path), path, overrides, cwd)


def load_recipe_dict(
    sections: Mapping[str, Any],
    path: Path,
    overrides: typing.Sequence[tuple[str, Any]] = (),
    cwd: Path | None = None,
) -> LoadedRecipe:
    """Validate a recipe already read into a mapping, as ``load_recipe`` validates a file's.

    For a caller that reads or trims the YAML first, such as the part of a saved run's recipe an
    evaluation needs.

    Args:
        sections: the recipe's top-level sections (left unchanged).
        path: the file the recipe came from: its default name, the folder relative
            ``data.source`` paths are read from, and the file errors name.
        overrides: ``(dotted.key, value)`` pairs from flags and ``--set``, applied in order.
        cwd: the working directory for command-line paths.

    Raises:
        RecipeError: an unknown key, a value out of range.
    """
    cwd = cwd or Path.cwd()
    raw = copy.deepcopy(dict(sections))
    raw.setdefault("name", _default_name(path))
    source = raw.get("data", {}).get("source") if isinstance(raw.get("data"), dict) else None
    if isinstance(source, str):
        raw["data"]["source"] = str(_resolve_path(source, path.parent))
    overridden: set[str] = set()
    for key, value in overrides:
        if key == "data.source" and isinstance(value, str):
            value = str(_resolve_path(value, cwd))
        _assign(raw, key, value, path)
        overridden.add(key)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(_explain(exc, path, overridden)) from None
    return LoadedRecipe(recipe=recipe, path=path)


def read_recipe_yaml(path: Path) -> dict[str, Any]:
    """A recipe file's sections, as plain YAML (nothing validated yet).

    Raises:
        RecipeError: the file is unreadable, not YAML, or not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(
            f"Cannot read recipe {path}: {exc}. Expected a UTF-8 YAML file."
        ) from None
    try:
        data = load_yaml(text)
    except RecipeYamlError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise RecipeError(
            f"Recipe {path} cannot be used: {exc.problem}{where}. A recipe is a small mapping of "
            f"sections such as data:, model:, train:; fix the file there."
        ) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RecipeError(
            f"Recipe {path} is not valid YAML{where}: {problem}. Fix the indentation or quoting "
            f"there; a recipe is a mapping of sections such as data:, model:, train:."
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"Recipe {path} holds a {type(data).__name__}, expected a mapping with sections such "
            f"as name:, data:, model:, train:."
        )
    return data


def _default_name(path: Path) -> str:
    stem = path.parent.resolve().name if path.name == DEFAULT_RECIPE else path.stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-") or "recipe"


def _resolve_path(text: str, base: Path) -> Path:
    expanded = Path(os.path.expandvars(text)).expanduser()
    return expanded if expanded.is_absolute() else (base / expanded).resolve()


def _assign(raw: dict[str, Any], dotted: str, value: Any, path: Path) -> None:
    node = raw
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise RecipeError(
                f"Cannot set {dotted}: {where} in {path} is {child!r}, not a section. "
                f"Check the key's spelling with --print-recipe."
            )
        node = child
    node[parts[-1]] = value


# --- turning pydantic's errors into sentences ---------------------------------------------------


def _explain(exc: ValidationError, path: Path, overridden: set[str]) -> str:
    sentences = []
    for error in exc.errors():
        loc = _clean_loc(error["loc"])
        if error["type"] == "union_tag_invalid":
            loc = (*loc, "family")
        dotted = ".".join(str(p) for p in loc)
        origin = " (given on the command line)" if dotted in overridden else ""
        kind = error["type"]
        if kind == "extra_forbidden":
            valid = _valid_keys(error["loc"][:-1])
            guess = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
            section = ".".join(str(p) for p in loc[:-1]) or "the top level"
            hint = f" Did you mean `{'.'.join([*map(str, loc[:-1]), guess[0]])}`?" if guess else ""
            sentences.append(
                f"Unknown key `{dotted}`{origin}.{hint} Valid keys in {section}: "
                f"{', '.join(valid)}."
            )
        elif kind == "missing":
            sentences.append(f"Missing required key `{dotted}`.")
        elif kind == "union_tag_not_found":  # `model:` a list, empty, or `family` not a word
            families = ", ".join(str(_family(m)) for m in _models_in(ModelSpec))
            sentences.append(
                f"`{dotted}`{origin} must be a mapping such as {{family: mlp, units: [64]}}, "
                f"whose `family` is one of {families}. Received: {error.get('input')!r}."
            )
        elif kind in ("union_tag_invalid", "enum", "literal_error"):
            choices = _choices(error)
            received = error.get("input")
            if kind == "union_tag_invalid":
                received = error.get("ctx", {}).get("tag", received)
            guess = difflib.get_close_matches(str(received), choices, n=1, cutoff=0.5)
            hint = f" Did you mean {guess[0]!r}?" if guess else ""
            sentences.append(
                f"`{dotted}`{origin} must be one of {', '.join(choices)}. "
                f"Received: {received!r}.{hint}"
            )
        elif kind == "value_error":  # our own validators say what they received
            message = error["msg"].removeprefix("Value error, ").rstrip(".")
            sentences.append(f"`{dotted}`: {message}." if dotted else f"{message}.")
        else:
            sentences.append(
                f"`{dotted}`{origin}: {error['msg']}. Received: {error.get('input')!r}."
            )
    return (
        f"Recipe {path} is not valid: {' '.join(sentences)} "
        f"Fix the recipe (or the flag), then check it with --print-recipe."
    )


def _choices(error: Any) -> list[str]:
    ctx = error.get("ctx", {})
    text = ctx.get("expected_tags") or ctx.get("expected") or ""
    return re.findall(r"'([^']*)'", text)


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # A discriminated union puts the chosen tag into the location: model.cnn.filters.
    tags = {_family(m) for m in _models_in(ModelSpec)}
    cleaned = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "model" and part in tags:
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    models: list[type[BaseModel]] = [Recipe]
    for part in loc:
        tagged = [m for m in models if _family(m) == part]
        if tagged:  # the discriminator's tag in a union's location picks the member
            models = tagged
            continue
        nxt: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(str(part))
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        models = nxt
    keys: list[str] = []
    for model in models:
        keys.extend(k for k in model.model_fields if k not in keys)
    return keys


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        found: list[type[BaseModel]] = []
        for arg in get_args(annotation):
            found.extend(_models_in(arg))
        return found
    return []


def _family(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("family")
    return field.default if field is not None else None
