"""Recipe YAML as authors mean it: YAML 1.2 booleans, no duplicate keys, bounded size and depth."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from dltrain.errors import RecipeError
from dltrain.recipe import load_recipe, parse_assignment
from dltrain.recipe.load import read_recipe_yaml
from dltrain.recipe.schema import Switch


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_on_off_yes_no_are_the_words_users_wrote(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data: {source: x.npz, split: {column: No}}\n"
        "train: {mixed_precision: on, jit_compile: off, shuffle: yes}\n",
    )
    sections = read_recipe_yaml(path)
    assert sections["train"]["mixed_precision"] == "on" and sections["train"]["shuffle"] == "yes"
    assert sections["data"]["split"]["column"] == "No"
    recipe = load_recipe(path).recipe
    assert recipe.train.mixed_precision is Switch.ON and recipe.train.jit_compile is Switch.OFF
    assert recipe.train.shuffle is True  # a bool field still takes yes/no
    assert recipe.data.split.column == "No"
    words = read_recipe_yaml(write(tmp_path, "a: [y, n, Y, N, true, False, 1e-3, 2.5e+2]\n"))
    assert words["a"] == ["y", "n", "Y", "N", True, False, 0.001, 250.0]


def test_set_reads_values_the_same_way() -> None:
    assert parse_assignment("data.split.column=No") == ("data.split.column", "No")
    assert parse_assignment("train.mixed_precision=on") == ("train.mixed_precision", "on")
    assert parse_assignment("train.shuffle=false") == ("train.shuffle", False)
    assert parse_assignment("train.optimizer.learning_rate=1e-3")[1] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (
            "train:\n  epochs: 2\ndata:\n  source: x.npz\ntrain:\n  epochs: 3\n",
            "'train'",
            "1 and 5",
        ),
        (
            "data:\n  source: x.npz\n  csv:\n    header: true\n    header: false\n",
            "'header'",
            "4 and 5",
        ),
        ("train: {epochs: 2, epochs: 3}\n", "'epochs'", "1 and 1"),
    ],
    ids=["top level", "nested", "flow mapping"],
)
def test_a_key_given_twice_is_refused_naming_both_lines(
    tmp_path: Path, text: str, key: str, lines: str
) -> None:
    with pytest.raises(RecipeError, match=rf"{key} is given twice \(lines {lines}\)"):
        load_recipe(write(tmp_path, text))


def test_merge_keys_may_override_what_they_merge(tmp_path: Path) -> None:
    text = "base: &b {epochs: 2, batch_size: 8}\ntrain:\n  <<: *b\n  epochs: 3\n"
    assert read_recipe_yaml(write(tmp_path, text))["train"] == {"epochs": 3, "batch_size": 8}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "aliases expand to more than 100,000 values",
        ),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nests more than 64 levels deep"),
        ("a: " + "x" * (2 << 20) + "\n", "characters long"),
    ],
    ids=["alias bomb", "5000 brackets", "2 MB"],
)
def test_recipes_that_would_exhaust_the_machine_are_refused_at_once(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    before, started = _peak_rss_mb(), time.perf_counter()
    with pytest.raises(RecipeError, match=problem):
        load_recipe(path)
    assert time.perf_counter() - started < 5
    assert _peak_rss_mb() - before < 200
