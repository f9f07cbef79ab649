"""README.md stays true: its two commands come first and its recipe reference covers every key."""

from __future__ import annotations

import re

from pydantic import BaseModel

from dltrain.recipe.load import _models_in
from dltrain.recipe.schema import Recipe
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def schema_keys(model: type[BaseModel]) -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for child in _models_in(field.annotation):
            keys |= schema_keys(child)
    return keys


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```")[1]
    assert [line.split()[1] for line in first_block.strip().splitlines()] == ["demo", "test"]


def test_recipe_reference_documents_every_key() -> None:
    section = README.split("## Recipe reference", 1)[1]
    documented = set(
        re.findall(r"^\s*([a-z_][a-z0-9_]*):", section.split("```yaml", 1)[1].split("```")[0], re.M)
    )
    assert schema_keys(Recipe) - documented == set()


def test_makefile_has_the_targets_readme_names() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"^make ([a-z-]+)", README, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), target
