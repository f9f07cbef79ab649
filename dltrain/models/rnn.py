"""Recurrent networks over sequences (time-series windows): stacked LSTM/GRU/SimpleRNN."""

from __future__ import annotations

from dltrain.backend import keras
from dltrain.manifest import FeatureKind
from dltrain.models.blocks import dense_stack, regularizer
from dltrain.models.io import ModelIO
from dltrain.recipe.models import RnnCell, RnnSpec

CELLS = {
    RnnCell.LSTM: keras.layers.LSTM,
    RnnCell.GRU: keras.layers.GRU,
    RnnCell.SIMPLE: keras.layers.SimpleRNN,
}


def build_rnn(spec: RnnSpec, io: ModelIO) -> keras.Model:
    """Build a stacked (optionally bidirectional) RNN; all but the last layer return sequences."""
    io.require("rnn", FeatureKind.SEQUENCE)
    raw, x = io.inputs()
    for i, units in enumerate(spec.units, start=1):
        layer = CELLS[spec.cell](
            units,
            return_sequences=i < len(spec.units),
            recurrent_dropout=spec.recurrent_dropout,
            kernel_regularizer=regularizer(spec),
            name=f"{spec.cell.value}{i}",
        )
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional{i}")
        x = layer(x)
        if spec.batch_norm:
            x = keras.layers.BatchNormalization(momentum=spec.batch_norm_momentum, name=f"bn{i}")(x)
    x = dense_stack(x, spec.dense, spec)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(raw, io.head(x, window=raw), name="rnn")
