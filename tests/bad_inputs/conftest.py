"""The corpus's fixture projects, each built once per session and copied for every case, so no
case sees another's files and none pays for a preparation or a training of its own."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.bad_inputs.corpus import recipe, rewrite_paths
from tests.conftest import invoke


def good_table(rows: int = 60, seed: int = 0) -> str:
    """A small classification table: a number, a category and a two-class target."""
    rng = np.random.default_rng(seed)
    lines = ["x,z,y"]
    for i in range(rows):
        lines.append(f"{rng.normal():.3f},{'pqr'[i % 3]},{'ab'[i % 2]}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def source_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a good table and its prepared dataset data/bad/ (recipe ``bad``): a case
    writes its own bad source and recipe ``bad`` beside them, and a failed prepare must leave
    data/bad/ and the sources exactly as they were."""
    root = tmp_path_factory.mktemp("bad-inputs-source")
    (root / "good.csv").write_text(good_table())
    recipe({"source": "good.csv", "target": "y"})(root)
    with contextlib.chdir(root):
        code, _, err = invoke("prepare")
    assert code == 0, err
    return root


@pytest.fixture
def source_project(source_template: Path, tmp_path: Path) -> Path:
    """A private copy of ``source_template``."""
    target = tmp_path / "project"
    shutil.copytree(source_template, target)
    return target


@pytest.fixture
def trained_project(tmp_path: Path) -> Path:
    """A private copy of the trained evaluation template (tests/cli/eval_projects.py: image runs
    ``tiny`` (two) and ``bin``, table run ``house``, autoencoder ``ae``), its run records
    pointing at the copy's own prepared data."""
    from tests.cli.eval_projects import template

    target = tmp_path / "project"
    shutil.copytree(template(), target)
    rewrite_paths(target, template())
    return target
