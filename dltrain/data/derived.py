"""Derived numeric columns (``data.derived``) on numpy arrays, for prepare.

Prepare checks the expressions against the table's columns and computes the derived values of
training rows to fit their statistics like any numeric column's; the model computes the same
expressions from its raw inputs (``encoders.table_inputs``), so the saved model takes raw rows.
Values that are not finite (a division by zero) count as missing and get the column's fill value.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np

from dltrain.errors import DataError
from dltrain.recipe.expressions import column_names, evaluate_expression, parse_expression


def check_derived(
    derived: Mapping[str, str], columns: list[str], numeric: list[str], targets: list[str]
) -> None:
    """Every derived column has a new name and reads numeric feature columns only.

    Args:
        derived: the recipe's ``data.derived`` (name → expression).
        columns: the source's columns.
        numeric: the source's numeric columns the model takes as raw inputs.
        targets: the target column(s), which a feature must never read.

    Raises:
        DataError: a name that clashes with a source column, or an expression that reads an
            unknown, non-numeric or target column.
    """
    for name, text in derived.items():
        if name in columns:
            raise DataError(
                f"`data.derived.{name}` would replace the source column {name!r}. Give the "
                f"derived column a new name, e.g. {name + '_derived'!r}."
            )
        for used in column_names(parse_expression(text)):
            if used in targets:
                raise DataError(
                    f"`data.derived.{name}` ({text!r}) reads the target {used!r}, which is not "
                    f"known when predicting. Derive features from feature columns only."
                )
            if used in numeric:
                continue
            if used in columns:
                raise DataError(
                    f"`data.derived.{name}` ({text!r}) reads {used!r}, which is not a numeric "
                    f"feature column. Derived columns compute with numbers: use numeric "
                    f"columns ({', '.join(numeric) or 'none'}), or pin {used!r} with "
                    f"`data.columns.{used}.type: numeric`."
                )
            guess = difflib.get_close_matches(used, columns, n=1, cutoff=0.5)
            hint = f" Did you mean {guess[0]!r}?" if guess else ""
            raise DataError(
                f"`data.derived.{name}` ({text!r}) reads the column {used!r}, which the source "
                f"does not have.{hint} Its numeric columns are: {', '.join(numeric) or 'none'}."
            )


def derive_numpy(text: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """One derived column's values; NaN where an input is missing or the result is not finite.

    Inputs are rounded to float32 first, as the model sees them, so the statistics fitted here
    match the values the model computes.

    Args:
        text: the expression.
        columns: the source's numeric columns (NaN where missing).

    Returns:
        float64 values, one per row.
    """
    tree = parse_expression(text)
    inputs = {n: columns[n].astype(np.float32).astype(np.float64) for n in column_names(tree)}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = np.asarray(evaluate_expression(tree, inputs), dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)
