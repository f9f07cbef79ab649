"""Derived-column expressions: a tiny arithmetic grammar, parsed with ast, never eval."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from dltrain.recipe.data import DataSpec
from dltrain.recipe.expressions import (
    ExpressionError,
    column_names,
    evaluate_expression,
    parse_expression,
)


def test_names_numbers_operators_and_parentheses_compute_like_arithmetic() -> None:
    tree = parse_expression("(rooms - 1) / households * 2 + -bedrooms")
    assert column_names(tree) == ["rooms", "households", "bedrooms"]
    columns = {
        "rooms": np.array([5.0, 9.0]),
        "households": np.array([2.0, 4.0]),
        "bedrooms": np.array([1.0, 3.0]),
    }
    np.testing.assert_allclose(evaluate_expression(tree, columns), [3.0, 1.0])


def test_a_division_by_the_number_zero_gives_missing_values_not_a_crash() -> None:
    values = evaluate_expression(parse_expression("a / (2 - 2)"), {"a": np.array([1.0, 2.0])})
    assert np.isnan(values).all()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("__import__('os').system('true')", "a function call"),
        ("rooms.real", "attribute access .real"),
        ("rooms ** 2", "'**'"),
        ("rooms % 2", "'%'"),
        ("rooms // households", "'//'"),
        ("rooms if households else 1", "IfExp"),
        ("rooms < households", "Compare"),
        ("'rooms' + households", "the literal 'rooms'"),
        ("True * rooms", "the literal True"),
        ("rooms[0]", "Subscript"),
        ("lambda: rooms", "Lambda"),
    ],
)
def test_anything_outside_the_grammar_is_refused_by_name(text: str, needle: str) -> None:
    with pytest.raises(ExpressionError, match="derived columns do not allow") as info:
        parse_expression(text)
    assert needle in str(info.value)


def test_syntax_errors_and_expressions_without_a_column_are_refused() -> None:
    with pytest.raises(ExpressionError, match="not a valid expression"):
        parse_expression("rooms / ")
    with pytest.raises(ExpressionError, match="names no column"):
        parse_expression("3 / 4")


def test_the_recipe_checks_expressions_when_it_is_loaded(tmp_path: object) -> None:
    spec = DataSpec.model_validate(
        {"source": "homes.csv", "derived": {"per_room": "bedrooms / rooms"}}
    )
    assert spec.derived == {"per_room": "bedrooms / rooms"}
    with pytest.raises(ValidationError, match=r"derived column 'bad'.*'\*\*'"):
        DataSpec.model_validate({"source": "homes.csv", "derived": {"bad": "rooms ** 2"}})
    with pytest.raises(ValidationError, match="`derived` columns are for tables"):
        DataSpec.model_validate(
            {"source": "t.csv", "derived": {"x": "a / b"}, "series": {"lookback": 3}}
        )
