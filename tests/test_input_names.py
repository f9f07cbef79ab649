"""Keras input names for table columns: valid for Keras and TensorFlow, unique, recorded once."""

from __future__ import annotations

import re

import numpy as np

from dltrain.input_names import keras_input_names
from dltrain.manifest import Manifest
from tests.manifests import manifest_of

# What a SavedModel signature accepts as a name (tensorflow/python/framework/ops.py), less the
# `/` that Keras refuses in a layer's name.
TENSORFLOW_OP_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$")

AWKWARD = [
    "Sale Price/m2",
    "type (code)",
    "type_code",
    "rooms #",
    "Rooms #",
    "_private",
    "-",
    "",
    "prix €",
    "naïve",
    "a/b",
    "a b",
]


def test_valid_names_are_kept_and_the_others_made_valid_and_readable() -> None:
    names = keras_input_names(["price", "size.m2", "x-1", "Sale Price/m2", "type (code)"])
    assert names == {
        "price": "price",
        "size.m2": "size.m2",
        "x-1": "x-1",
        "Sale Price/m2": "Sale_Price_m2",
        "type (code)": "type_code",
    }


def test_every_name_is_valid_for_keras_and_tensorflow_and_unique() -> None:
    names = keras_input_names(AWKWARD)
    assert list(names) == AWKWARD  # one per column, in order
    for name in names.values():
        assert TENSORFLOW_OP_NAME.match(name) and "/" not in name, name
    assert len({n.lower() for n in names.values()}) == len(AWKWARD)  # distinct even ignoring case


def test_a_column_already_spelled_as_a_renamed_one_keeps_its_name() -> None:
    # "type_code" is valid as it is; the renamed "type (code)" moves aside, whatever the order.
    for order in (["type (code)", "type_code"], ["type_code", "type (code)"]):
        names = keras_input_names(order)
        assert names["type_code"] == "type_code" and names["type (code)"] == "type_code_2"


def test_names_dltrain_gives_its_own_layers_are_left_to_them() -> None:
    columns = ["features", "steps", "city_lookup", "city_embedding", "hidden0", "Features", "price"]
    names = keras_input_names(columns)
    assert names == {
        "features": "column_features",
        "steps": "column_steps",
        "city_lookup": "column_city_lookup",
        "city_embedding": "column_city_embedding",  # city's Embedding layer, when embedded
        "hidden0": "column_hidden0",
        "Features": "Features",  # layer names are case-sensitive: no clash
        "price": "price",
    }


def test_the_names_are_deterministic() -> None:
    assert keras_input_names(AWKWARD) == keras_input_names(list(AWKWARD))


def table(columns: list[dict[str, object]]) -> Manifest:
    return manifest_of(
        "binary",
        features={"kind": "table", "columns": columns, "num_features": 1},
        target={"classes": ["no", "yes"]},
    )


def test_rows_are_keyed_by_input_name_where_the_manifest_records_one() -> None:
    manifest = table(
        [
            {"name": "Sale Price/m2", "type": "numeric", "dtype": "float32", "input_name": "S"},
            {"name": "rooms", "type": "numeric", "dtype": "float32", "input_name": "rooms"},
        ]
    )
    rows = {"Sale Price/m2": np.zeros(2), "rooms": np.ones(2)}
    assert list(manifest.model_inputs(rows)) == ["S", "rooms"]
    pixels = np.zeros((2, 3))
    assert manifest.model_inputs(pixels) is pixels


def test_a_manifest_from_before_input_names_keys_rows_by_column_name() -> None:
    # Its models were built keyed by column name: they must keep getting what they take.
    manifest = table([{"name": "Sale Price/m2", "type": "numeric", "dtype": "float32"}])
    rows = {"Sale Price/m2": np.zeros(2)}
    assert list(manifest.model_inputs(rows)) == ["Sale Price/m2"]
