"""Text classifiers and regressors: token embeddings, then a convolutional, BiLSTM or
self-attention encoder, then dense layers; or a bag of words and n-grams, then dense layers.

With ``data.text.bag`` the text has a second view, a bag of other n-grams (by default
characters), concatenated to the encoder's output before the dense layers: the encoder reads the
words in order, the bag catches what words miss (numbers, misspellings, unseen words)."""

from __future__ import annotations

from typing import Any

from dltrain.backend import keras
from dltrain.manifest import FeatureKind, TextFeatures
from dltrain.models.blocks import dense_stack, regularizer
from dltrain.models.io import ModelIO
from dltrain.recipe.models import TextEncoder, TextSpec


def build_text(spec: TextSpec, io: ModelIO) -> keras.Model:
    """Build a text model on the token ids the model's own vectorizer produces."""
    io.require("text", FeatureKind.TEXT)
    if spec.encoder == TextEncoder.BAG:
        return _bag(spec, io)
    features = io.manifest.features
    assert isinstance(features, TextFeatures)
    raw, tokens = io.inputs()
    x = keras.layers.Embedding(
        features.vocabulary_size,
        spec.embedding_dim,
        mask_zero=spec.encoder == TextEncoder.BILSTM,  # padding must not feed the LSTM's state
        name="embedding",
    )(tokens)
    if spec.encoder == TextEncoder.CONV:
        x = keras.layers.Conv1D(
            spec.filters,
            spec.kernel_size,
            padding="same",
            activation=spec.activation.value,
            kernel_regularizer=regularizer(spec),
            name="conv",
        )(x)
        x = keras.layers.GlobalMaxPooling1D(name="max_pool")(x)
    elif spec.encoder == TextEncoder.BILSTM:
        x = keras.layers.Bidirectional(keras.layers.LSTM(spec.units), name="bilstm")(x)
    else:
        x = _attention_encoder(x, tokens, spec, features.sequence_length)
    x = _with_bag_view(x, raw, spec, io)
    x = dense_stack(x, spec.dense, spec)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(raw, io.head(x), name="text")


def _bag(spec: TextSpec, io: ModelIO) -> keras.Model:
    """The text's bag of vocabulary entries (words and, with ``data.text.ngrams``, n-grams),
    then dense layers: order beyond the n-grams is ignored, and every entry seen in training
    counts, however rare (an embedding of the sequence would have to learn it)."""
    from dltrain.models.encoders import text_bag

    raw, x = text_bag(io.manifest, spec.bag_mode.value)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="bag_dropout")(x)
    x = _with_bag_view(x, raw, spec, io)
    x = dense_stack(x, spec.dense, spec)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(raw, io.head(x), name="text")


def _with_bag_view(x: Any, raw: Any, spec: TextSpec, io: ModelIO) -> Any:
    """``x`` and, where the data has ``data.text.bag``, the text's bag of its entries (weighed
    by ``model.bag_mode``, through the model's dropout) concatenated after it."""
    from dltrain.models.encoders import text_bag_view

    bag = text_bag_view(io.manifest, raw, spec.bag_mode.value)
    if bag is None:
        return x
    if spec.dropout:
        bag = keras.layers.Dropout(spec.dropout, name="bag_view_dropout")(bag)
    return keras.layers.Concatenate(name="views")([x, bag])


def _attention_encoder(x: Any, tokens: Any, spec: TextSpec, length: int) -> Any:
    """One transformer encoder block with learned positions; padding is masked out."""
    positions = keras.ops.arange(length)
    x = x + keras.layers.Embedding(length, spec.embedding_dim, name="positions")(positions)
    mask = keras.ops.expand_dims(keras.ops.not_equal(tokens, 0), axis=1)
    attended = keras.layers.MultiHeadAttention(
        spec.num_heads, max(1, spec.embedding_dim // spec.num_heads), name="attention"
    )(x, x, attention_mask=mask)
    x = keras.layers.LayerNormalization(name="attention_norm")(x + attended)
    hidden = keras.layers.Dense(spec.ff_dim, activation=spec.activation.value, name="ff1")(x)
    x = keras.layers.LayerNormalization(name="ff_norm")(
        x + keras.layers.Dense(spec.embedding_dim, name="ff2")(hidden)
    )
    return keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
