"""Keras layers that redo, inside the model, the preprocessing prepare fitted on training data.

Built only from the manifest's stored statistics and only from Keras's own layers and ops (no
custom layer classes), so a saved model loads with plain ``keras.models.load_model`` and takes
raw data: pixels as the source had them, a dict of one value per source column for tables, raw
strings for text, raw windows for series. ``models/io.py`` calls these from ``ModelIO.inputs``.

Tables encode to one flat float32 vector per row: the numeric columns (missing values imputed,
outliers clipped, optionally log-transformed, then normalised) followed by a block per category
column: one-hot, or an embedding (``data.columns.<col>.encoding``), indexed out-of-vocabulary
bucket first, missing values mapped as the recipe said.
Derived numeric columns (``data.derived``) are computed from the raw numeric inputs with Keras's
arithmetic ops, then treated like any numeric column.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import (
    CategoricalColumn,
    ImageFeatures,
    ImagePreprocessing,
    Manifest,
    NumericColumn,
    SequenceFeatures,
    SequencePreprocessing,
    TableFeatures,
    TablePreprocessing,
    TextBag,
    TextFeatures,
    TextPreprocessing,
)
from dltrain.recipe.data import CategoryEncoding

# A table model's raw inputs: one keras.Input per source column, by column name.
RawInputs = dict[str, keras.KerasTensor]
# The layer that scales raw numbers computes in float32 under mixed precision too: raw values
# pass float16's 65,504 (incomes, sampling weights: inf, then NaN) and keep only about three
# digits in bfloat16; scaled, they suit either.
RAW_VALUES_DTYPE = "float32"


def _layer_name(column: str) -> str:
    """A layer name for a column where the manifest names none (text; tables prepared before
    input names were recorded)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", column) or "column"


def image_inputs(manifest: Manifest) -> tuple[Any, Any]:
    """A raw pixel Input in the source's dtype and its scaled values."""
    features = manifest.features
    assert isinstance(features, ImageFeatures)
    preprocessing = manifest.preprocessing_as(ImagePreprocessing)
    raw = keras.Input(shape=tuple(features.shape), dtype=features.dtype, name="input")
    scaled = keras.layers.Rescaling(preprocessing.scale, preprocessing.offset, name="scaling")(raw)
    return raw, scaled


def table_inputs(manifest: Manifest) -> tuple[RawInputs, Any]:
    """One raw Input per source column (the target excepted) and the encoded feature vector.

    The inputs are keyed by the columns' input names (``TableColumn.model_key``), each Input
    named as its key, so Keras has nothing to warn about and a SavedModel's signature takes the
    same names; ``Manifest.model_inputs`` keys rows so.
    """
    ops = keras.ops
    features = manifest.features
    assert isinstance(features, TableFeatures)
    preprocessing = manifest.preprocessing_as(TablePreprocessing)
    raw: RawInputs = {}  # by column name, as the preprocessing names them
    keyed: RawInputs = {}  # by input name: the model's inputs
    layer_names: dict[str, str] = {}
    for column in features.columns:
        name = column.input_name or _layer_name(column.name)
        # Keras names its ops itself (maximum, where, stack, …) and knows nothing of an Input's
        # given name: counting the name as used makes its ops take maximum_1, … instead, so a
        # column called "maximum" does not clash with the clipping op.
        keras.backend.get_uid(name)
        layer_names[column.name] = name
        raw[column.name] = keras.Input(shape=(), dtype=column.dtype, name=name)
        keyed[column.model_key] = raw[column.name]
    parts = []
    numeric = preprocessing.numeric
    if numeric:
        x = ops.stack([_numeric_input(n, raw) for n in numeric], axis=-1)
        x = ops.where(ops.isnan(x), _vector([n.fill for n in numeric]), x)
        low, high = _vector([n.low for n in numeric]), _vector([n.high for n in numeric])
        x = ops.minimum(ops.maximum(x, low), high)
        logged = np.array([n.log for n in numeric])
        if logged.any():
            shifted = ops.log1p(ops.maximum(x - _vector([n.shift for n in numeric]), 0.0))
            x = ops.where(logged, shifted, x)
        x = keras.layers.Normalization(
            mean=[n.mean for n in numeric],
            variance=[n.variance for n in numeric],
            dtype=RAW_VALUES_DTYPE,
            name="numeric_scaling",
        )(x)
        parts.append(x)
    for category in preprocessing.categorical:
        name = layer_names.get(category.column) or _layer_name(category.column)
        index = keras.layers.StringLookup(
            vocabulary=category.vocabulary,
            num_oov_indices=1,
            output_mode="int",
            name=f"{name}_lookup",
        )(raw[category.column])
        mapping = np.asarray(category.mapping, dtype="int64")
        if not np.array_equal(mapping, np.arange(len(mapping))):
            index = ops.take(mapping, index)
        # [batch, 1], said explicitly: TFLite's gather after the lookup loses the batch axis of a
        # one-row batch (a scalar, which the concatenation below then refuses)
        index = ops.reshape(index, (-1, 1))
        parts.append(_encode_category(index, category, name))
    if not parts:
        raise RecipeError(
            "The prepared table has no feature column to learn from; prepare it again with at "
            "least one numeric or categorical column (`data.columns`)."
        )
    encoded = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return keyed, encoded


def _encode_category(index: Any, category: CategoricalColumn, name: str) -> Any:
    """A category column's block of the row: one-hot, or a trained vector per index (row 0,
    out of vocabulary, is trained too: it stands for every value training never kept)."""
    if category.encoding == CategoryEncoding.EMBEDDING:
        assert category.embedding_dim is not None
        vectors = keras.layers.Embedding(
            category.num_tokens, category.embedding_dim, name=f"{name}_embedding"
        )(index)
        return keras.ops.reshape(vectors, (-1, category.embedding_dim))
    # one-hot reads the [batch, 1] index as one value per row: [batch, num_tokens]
    return keras.layers.CategoryEncoding(
        num_tokens=category.num_tokens, output_mode="one_hot", name=f"{name}_onehot"
    )(index)


def _numeric_input(entry: NumericColumn, raw: RawInputs) -> Any:
    """A numeric column's raw values: a source input, or a derived column computed from them.

    Derived values that are not finite (a division by zero) become NaN, so the column's fill value
    replaces them, as prepare did when it fitted the column's statistics.
    """
    expression = entry.expression
    if expression is None:
        return raw[entry.column]
    from dltrain.recipe.expressions import evaluate_expression, parse_expression

    ops = keras.ops
    values = evaluate_expression(parse_expression(expression), raw)
    return ops.where(ops.isfinite(values), values, float("nan"))


def _vector(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype="float32")


def text_inputs(manifest: Manifest) -> tuple[Any, Any]:
    """A raw string Input and its token ids, shape (sequence_length,), 0 for padding."""
    features = manifest.features
    assert isinstance(features, TextFeatures)
    preprocessing = manifest.preprocessing_as(TextPreprocessing)
    raw = keras.Input(shape=(), dtype="string", name=_layer_name(features.column))
    tokens = keras.layers.TextVectorization(
        vocabulary=preprocessing.vocabulary,
        output_mode="int",
        output_sequence_length=features.sequence_length,
        name="vectorize",
        **_text_splitting(preprocessing),
    )(raw)
    return raw, tokens


def text_bag(manifest: Manifest, mode: str) -> tuple[Any, Any]:
    """A raw string Input and its bag of vocabulary entries, shape (vocabulary + 1,), entry 0
    the out-of-vocabulary words: ``multi_hot``, ``count`` or ``tf_idf`` (prepare's idf).

    Raises:
        RecipeError: tf_idf on data prepared before prepare recorded the idf.
    """
    features = manifest.features
    assert isinstance(features, TextFeatures)
    preprocessing = manifest.preprocessing_as(TextPreprocessing)
    if mode == "tf_idf" and preprocessing.idf is None:
        raise RecipeError(
            "`model.bag_mode: tf_idf` needs each word's inverse document frequency, which this "
            "dataset's manifest lacks (it was prepared by an earlier dltrain). Run `dltrain "
            "prepare --force`, or set `model.bag_mode: multi_hot`."
        )
    raw = keras.Input(shape=(), dtype="string", name=_layer_name(features.column))
    bag = _bag(preprocessing.vocabulary, preprocessing.idf, _text_splitting(preprocessing), mode)
    return raw, bag(raw)


def text_bag_view(manifest: Manifest, raw: Any, mode: str) -> Any | None:
    """The bag of ``data.text.bag``'s entries of the raw strings ``raw`` (its own vocabulary,
    weighed as ``mode`` says), shape (entries + 1,); None when the data has no such view."""
    view = manifest.preprocessing_as(TextPreprocessing).bag
    if view is None:
        return None
    splitting = _text_splitting(view)
    return _bag(view.vocabulary, view.idf, splitting, mode, name="bag_view_vectorize")(raw)


def _bag(
    vocabulary: list[str],
    idf: list[float] | None,
    splitting: dict[str, Any],
    mode: str,
    name: str = "vectorize",
) -> Any:
    """The TextVectorization layer turning raw strings into a bag of ``vocabulary``."""
    weights = {"idf_weights": np.asarray(idf)} if mode == "tf_idf" else {}
    return keras.layers.TextVectorization(
        vocabulary=vocabulary, output_mode=mode, name=name, **weights, **splitting
    )


def _text_splitting(preprocessing: TextPreprocessing | TextBag) -> dict[str, Any]:
    """How the text becomes tokens, exactly as prepare fitted the vocabulary
    (``data/preparation/vocabulary.py``)."""
    standardize = preprocessing.standardize.value
    return {
        "standardize": None if standardize == "none" else standardize,
        "split": preprocessing.split.value,
        "ngrams": preprocessing.ngrams if preprocessing.ngrams > 1 else None,
    }


def sequence_inputs(manifest: Manifest) -> tuple[Any, Any]:
    """A raw window Input (lookback, num_features) and its standardised values.

    With a series transform, the target columns are instead their change from the window's last
    value, in units of the training windows' root mean square of that change.
    """
    features = manifest.features
    assert isinstance(features, SequenceFeatures)
    preprocessing = manifest.preprocessing_as(SequencePreprocessing)
    raw = keras.Input(shape=tuple(features.shape), dtype="float32", name="window")
    scaled = keras.layers.Normalization(
        axis=-1,
        mean=preprocessing.mean,
        variance=preprocessing.variance,
        dtype=RAW_VALUES_DTYPE,
        name="scaling",
    )(raw)
    layout = manifest.series
    if layout is None or layout.window_rms is None:
        return raw, scaled
    # A transform (series.transform): the target columns relative to the window's last value, so
    # a series that trends beyond its training range still gives inputs the network has seen.
    ops = keras.ops
    columns = features.columns
    spread = np.ones(len(columns), np.float32)
    for name, std in zip(manifest.target.names, layout.window_rms, strict=True):
        spread[columns.index(name)] = std
    relative = (raw - raw[:, -1:, :]) / spread
    is_target = np.array([c in manifest.target.names for c in columns])
    return raw, ops.where(is_target, relative, scaled)
