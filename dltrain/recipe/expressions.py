"""Derived numeric columns: a tiny arithmetic grammar over a table's columns.

``data.derived`` maps a new column's name to an expression such as
``total_rooms / households``. The grammar is deliberately small: column names, numbers, the four
operators ``+ - * /``, unary minus and parentheses. It is parsed with :mod:`ast` and walked node
by node (never ``eval``), so a recipe cannot run code. The same walk computes a derived column on
numpy arrays in ``prepare`` (to fit its statistics on the training split) and on Keras tensors
inside the model (so the saved model still takes the source's raw columns).

Light: no TensorFlow, no numpy.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
GRAMMAR = "column names, numbers, + - * /, unary minus and parentheses"


class ExpressionError(ValueError):
    """An expression outside the grammar; the message says what was found and what is allowed."""


def parse_expression(text: str) -> ast.expr:
    """Parse and check one derived-column expression.

    Args:
        text: e.g. ``"total_bedrooms / total_rooms"``.

    Returns:
        The expression's syntax tree, holding only allowed nodes.

    Raises:
        ExpressionError: a syntax error, a construct outside the grammar, or no column at all.

    Example:
        >>> sorted(column_names(parse_expression("(a + b) / 2")))
        ['a', 'b']
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ExpressionError(
            f"{text!r} is not a valid expression ({error.msg}). Use {GRAMMAR}, "
            f"e.g. 'total_rooms / households'."
        ) from None
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Name | ast.Load):
            if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
                raise ExpressionError(_refusal(text, f"the operator {_symbol(node.op)}"))
            if isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY:
                raise ExpressionError(_refusal(text, f"the operator {_symbol(node.op)}"))
            continue
        if isinstance(node, ast.Constant) and _is_number(node.value):
            continue
        if isinstance(node, ast.operator | ast.unaryop):
            continue
        raise ExpressionError(_refusal(text, _describe(node)))
    if not column_names(tree):
        raise ExpressionError(
            f"{text!r} names no column, so every row would get the same value. Name at least "
            f"one numeric column of the source, e.g. 'total_rooms / households'."
        )
    return tree


def column_names(tree: ast.expr) -> list[str]:
    """The columns an expression reads, in order of first appearance."""
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Name)]
    found.sort(key=lambda node: (node.lineno, node.col_offset))  # ast.walk is breadth-first
    return list(dict.fromkeys(node.id for node in found))


def evaluate_expression(tree: ast.expr, columns: Mapping[str, T]) -> T:
    """Compute an expression with Python's operators on whatever ``columns`` holds.

    numpy arrays and Keras tensors both overload ``+ - * /``, so one walk serves prepare and the
    model. Division by zero follows the array library (inf or NaN); callers turn those into
    missing values.

    Args:
        tree: from :func:`parse_expression`.
        columns: column name → values (every name of :func:`column_names` must be there).

    Returns:
        The derived values.
    """

    def walk(node: ast.expr) -> Any:
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and isinstance(right, float) and right == 0.0:
                return left * float("nan")  # as arrays divide by zero: missing, not a crash
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Name):
            return columns[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        raise ExpressionError(f"unexpected node {type(node).__name__}")  # parse_expression bars it

    result: T = walk(tree)
    return result


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _symbol(op: ast.AST) -> str:
    symbols = {
        ast.Pow: "**",
        ast.Mod: "%",
        ast.FloorDiv: "//",
        ast.MatMult: "@",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.Invert: "~",
        ast.Not: "not",
    }
    return repr(symbols.get(type(op), type(op).__name__))


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Attribute):
        return f"the attribute access .{node.attr}"
    if isinstance(node, ast.Constant):
        return f"the literal {node.value!r}"
    return f"a {type(node).__name__} construct"


def _refusal(text: str, found: str) -> str:
    return (
        f"{text!r} uses {found}, which derived columns do not allow. Use only {GRAMMAR}, "
        f"e.g. 'total_bedrooms / total_rooms'."
    )
