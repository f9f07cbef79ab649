"""Feed-forward networks: dense (→ BN) → activation → dropout per hidden layer.

With ``ensemble: K`` the network is built K times side by side on the same preprocessed inputs
(each tower with its own numeric embedding, hidden layers and output) and the K outputs are
averaged inside the model: one model.keras that takes the same raw inputs. For regression of one
value each tower is trained on its own loss, as K separately trained networks would be (a deep
ensemble); other tasks train the mean.
"""

from __future__ import annotations

import math
from typing import Any

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import TablePreprocessing
from dltrain.models.blocks import dense_stack
from dltrain.models.io import ModelIO
from dltrain.recipe.models import MlpSpec, NumericEmbeddingSpec
from dltrain.tasks import Task


def build_mlp(spec: MlpSpec, io: ModelIO) -> keras.Model:
    """Build a multi-layer perceptron on any encoded features (flattened when not a vector).

    Raises:
        RecipeError: `numeric_embedding` is set but the data is not a table with numbers.
    """
    raw, encoded = io.inputs()
    if spec.ensemble == 1:
        return keras.Model(raw, _tower(encoded, io, spec, "", raw), name="mlp")
    # Towers start from different random weights, so their errors differ and partly cancel in
    # the mean.
    outputs = [_tower(encoded, io, spec, f"tower{k}_", raw) for k in range(1, spec.ensemble + 1)]
    if io.task == Task.REGRESSION and outputs[0].shape[-1] == 1:
        return keras.Model(raw, EnsembleMean(name="ensemble_mean")(outputs), name="mlp")
    return keras.Model(raw, keras.layers.Average(name="ensemble_mean")(outputs), name="mlp")


@keras.saving.register_keras_serializable(package="dltrain")
class EnsembleMean(keras.layers.Layer):
    """The mean of K one-value predictions; in training, the K predictions one per row.

    In training the output is (K, batch): a regression loss of the (batch,) targets against it
    broadcasts to every tower, and its mean over the last axis, then over the K rows, is the mean
    of the K towers' own losses (the same holds for the logged mae and rmse). So each tower
    learns from its own error, not from the mean's, and the towers do not co-adapt: trained
    through their mean, they fit like one wide network and overfit alike. Everywhere else
    (validation, evaluate, predict) the output is the (batch, 1) mean.

    Example:
        >>> EnsembleMean()([keras.ops.ones((2, 1)), keras.ops.zeros((2, 1))]).shape
        (2, 1)
    """

    def call(self, inputs: list[Any], training: bool | None = None) -> Any:
        stacked = keras.ops.concatenate(inputs, axis=-1)
        if training:
            return keras.ops.transpose(stacked)
        return keras.ops.mean(stacked, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: list[tuple[int | None, ...]]) -> tuple[Any, ...]:
        return (*input_shape[0][:-1], 1)


def _tower(x: Any, io: ModelIO, spec: MlpSpec, prefix: str, raw: Any) -> Any:
    """One network from the encoded features to the task's output; ``prefix`` names its layers,
    ``raw`` (the model's raw input) gives a forecaster's head its window."""
    if spec.numeric_embedding is not None:
        x = _embed_numbers(x, io, spec.numeric_embedding, prefix)
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name=f"{prefix}flatten")(x)
    for i, units in enumerate(spec.units, start=1):
        x = dense_stack(x, [units], spec, prefix=f"{prefix}hidden{i}_")
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"{prefix}hidden{i}_dropout")(x)
    return io.head(x, prefix, window=raw)


def _embed_numbers(x: Any, io: ModelIO, spec: NumericEmbeddingSpec, prefix: str = "") -> Any:
    """Add periodic embeddings of the table's numeric block (it comes first) to the features."""
    preprocessing = io.manifest.preprocessing
    numeric = preprocessing.numeric if isinstance(preprocessing, TablePreprocessing) else []
    if not numeric:
        raise RecipeError(
            "`model.numeric_embedding` embeds the numeric columns of a table, but the prepared "
            f"dataset holds {io.kind} features with no numeric column. Remove "
            "`model.numeric_embedding`, or prepare a table with numeric columns."
        )
    ops = keras.ops
    count = len(numeric)
    numbers, rest = x[:, :count], x[:, count:]
    # One row of frequencies per column (EinsumDense's kernel is (columns, frequencies)), so each
    # column learns its own periods; Keras's own layers keep the saved model loadable as is.
    phase = keras.layers.EinsumDense(
        "bn,nk->bnk",
        output_shape=(count, spec.frequencies),
        kernel_initializer=keras.initializers.RandomNormal(stddev=spec.scale),
        name=f"{prefix}numeric_frequencies",
    )(numbers)
    phase = 2.0 * math.pi * phase
    periodic = ops.concatenate([ops.sin(phase), ops.cos(phase)], axis=-1)
    embedded = keras.layers.EinsumDense(
        "bnk,nkd->bnd",
        output_shape=(count, spec.dim),
        bias_axes="nd",
        activation="relu",
        name=f"{prefix}numeric_embedding",
    )(periodic)
    embedded = keras.layers.Flatten(name=f"{prefix}numeric_embedding_flatten")(embedded)
    # The standardised numbers stay beside their embeddings: sums and differences of columns
    # (with log scaling, ratios such as rooms per household) remain one linear step away.
    parts = [numbers, embedded] + ([rest] if rest.shape[-1] else [])
    return keras.layers.Concatenate(name=f"{prefix}embedded_features")(parts)
