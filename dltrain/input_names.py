"""Keras names for a table's columns: the one spelling every model input of a column has.

A table model takes one named input per source column. Keras refuses ``/`` in a name, and a
SavedModel's serving signature takes only names TensorFlow accepts as op names
(``^[A-Za-z0-9.][A-Za-z0-9_.\\-/>]*$``, tensorflow/python/framework/ops.py); a model whose input
dict keys differ from its inputs' names draws a Keras ``UserWarning`` for each column on every
build and load. So ``prepare`` gives each column once a name valid under both rules, unique
within the table, records the mapping in the manifest (``TableColumn.input_name``), and the
model's inputs are keyed by it. Users keep their column names everywhere (recipes, the files
they predict on); the rename happens where rows are handed to the model. Light: standard
library only.

Example:
    >>> keras_input_names(["Sale Price/m2", "type (code)", "type_code"])
    {'Sale Price/m2': 'Sale_Price_m2', 'type (code)': 'type_code_2', 'type_code': 'type_code'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
_FIRST = re.compile(r"^[A-Za-z0-9]")
# Names dltrain gives its own layers (models/): a model's layer and input names must all differ,
# so an input may not take one ("The name "features" is used 2 times in the model"). The names
# Keras gives its ops on its own (maximum, where, …) are kept off the inputs' names in
# ``encoders.table_inputs`` instead.
_RESERVED = re.compile(
    r"^(features|numeric_scaling|mlp|ensemble_mean|flatten|latent|autoencoder|expand|crop"
    r"|unflatten|scaling|input|window|vectorize|probabilities|standardized|steps|target_units"
    r"|transformed_target|clip_to_target_range|head_flatten|embedded_features|numeric_embedding"
    r"|numeric_embedding_flatten|numeric_frequencies|reconstruction"
    r"|reconstruction_error|reconstruction_shape|cross_validated|fold_mean)$"
    r"|^(tower\d+_|hidden\d+|encoder\d+|decoder\d+|dense\d+|augment_|fold\d+$|fold_mean_)"
    r"|_(lookup|onehot|embedding)$"
)


def keras_input_name(column: str) -> str:
    """One column's Keras name, before collisions are resolved: every run of characters
    outside ``A-Z a-z 0-9 _ . -`` becomes one ``_``; leading and trailing ``_`` are dropped; a
    name that then does not start with a letter or digit, or that dltrain names one of its own
    layers (``features``, ``steps``, ``…_lookup``), is prefixed with ``column_``."""
    name = _INVALID.sub("_", column).strip("_")
    if _FIRST.match(name) and not _RESERVED.search(name):
        return name
    return f"column_{name}".rstrip("_")


def keras_input_names(columns: Iterable[str]) -> dict[str, str]:
    """Each column's Keras input name, unique within ``columns`` (deterministic).

    A name already taken by an earlier column, or by a column spelled that way in the source,
    gets ``_2``, ``_3``, … (compared without case, so the names also make distinct files on
    case-insensitive disks).

    Args:
        columns: the table's column names, in their order.

    Returns:
        Original name → Keras name, in the same order.
    """
    columns = list(columns)
    names: dict[str, str] = {}
    # A column whose name is already valid keeps it, whatever comes before it.
    taken = {c.lower() for c in columns if keras_input_name(c) == c}
    for column in columns:
        name = keras_input_name(column)
        if name != column:
            base, number = name, 2
            while name.lower() in taken:
                name, number = f"{base}_{number}", number + 1
            taken.add(name.lower())
        names[column] = name
    return names
