"""One duration grammar for every duration field of a recipe, and one way to print durations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dltrain.errors import RecipeError
from dltrain.recipe import load_recipe
from dltrain.recipe.durations import format_duration, parse_duration

FIELDS = ("train.time_budget", "tune.timeout", "tune.trial_timeout")
WRITTEN = [("1d", 86400.0), ("90m", 5400.0), ("2h30m", 9000.0), ("45s", 45.0), (5400, 5400.0)]
WRITTEN += [("5400", 5400.0), ("0.5s", 0.5), ("1h 30m", 5400.0), ("1d2h", 93600.0)]


def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text("name: t\ndata: {source: raw}\ntune: {num_trials: 2}\n")
    return path


def seconds_of(loaded: Any, dotted: str) -> float:
    section, key = dotted.split(".")
    return float(getattr(getattr(loaded.recipe, section), key))


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(("written", "seconds"), WRITTEN)
def test_every_duration_field_reads_the_same_grammar(
    tmp_path: Path, field: str, written: Any, seconds: float
) -> None:
    loaded = load_recipe(recipe_file(tmp_path), [(field, written)])
    assert seconds_of(loaded, field) == seconds


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("written", ["soon", "1h30", "30m1h", "", "-5m", True, "inf"])
def test_a_bad_duration_is_a_recipe_error_naming_the_field_and_the_grammar(
    tmp_path: Path, field: str, written: Any
) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe_file(tmp_path), [(field, written)])
    message = caught.value.message
    assert f"`{field}`: expected a duration" in message
    assert "such as 90s, 10m or 1h30m (also 2h, 1d)" in message
    assert f"Received: {written!r}" in message


def test_zero_and_negative_seconds_are_refused(tmp_path: Path) -> None:
    for written in (0, -3):
        with pytest.raises(RecipeError, match="greater than 0"):
            load_recipe(recipe_file(tmp_path), [("train.time_budget", written)])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "0.5s"),
        (45, "45s"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (86400, "1d"),
        (93784, "1d2h3m4s"),
    ],
)
def test_durations_print_in_the_grammar_they_are_read_in(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_no_limit_stays_none() -> None:
    assert parse_duration(None) is None
