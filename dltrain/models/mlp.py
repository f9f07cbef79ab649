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

import numpy as np

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import NumericColumn, TablePreprocessing
from dltrain.models.blocks import dense_stack
from dltrain.models.io import ModelIO
from dltrain.recipe.models import MlpSpec, NumericEmbeddingKind, NumericEmbeddingSpec
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
    """Add embeddings of the table's numeric block (it comes first) to the features."""
    preprocessing = io.manifest.preprocessing
    numeric = preprocessing.numeric if isinstance(preprocessing, TablePreprocessing) else []
    if not numeric:
        raise RecipeError(
            "`model.numeric_embedding` embeds the numeric columns of a table, but the prepared "
            f"dataset holds {io.kind} features with no numeric column. Remove "
            "`model.numeric_embedding`, or prepare a table with numeric columns."
        )
    count = len(numeric)
    numbers, rest = x[:, :count], x[:, count:]
    if spec.kind == NumericEmbeddingKind.PIECEWISE_LINEAR:
        encoded = PiecewiseLinearEncoding(
            bin_edges(numeric, spec.bins), name=f"{prefix}numeric_bins"
        )(numbers)
    else:
        encoded = _periodic(numbers, count, spec, prefix)
    # Each column's code through its own dense layer (EinsumDense's kernel is (columns, code,
    # dim)); Keras's own layers keep the saved model loadable as is.
    embedded = keras.layers.EinsumDense(
        "bnk,nkd->bnd",
        output_shape=(count, spec.dim),
        bias_axes="nd",
        activation="relu",
        name=f"{prefix}numeric_embedding",
    )(encoded)
    embedded = keras.layers.Flatten(name=f"{prefix}numeric_embedding_flatten")(embedded)
    # The standardised numbers stay beside their embeddings: sums and differences of columns
    # (with log scaling, ratios such as rooms per household) remain one linear step away.
    parts = [numbers, embedded] + ([rest] if rest.shape[-1] else [])
    return keras.layers.Concatenate(name=f"{prefix}embedded_features")(parts)


def _periodic(numbers: Any, count: int, spec: NumericEmbeddingSpec, prefix: str) -> Any:
    """[sin 2πcx, cos 2πcx] per column, with one row of trainable frequencies c per column."""
    ops = keras.ops
    phase = keras.layers.EinsumDense(
        "bn,nk->bnk",
        output_shape=(count, spec.frequencies),
        kernel_initializer=keras.initializers.RandomNormal(stddev=spec.scale),
        name=f"{prefix}numeric_frequencies",
    )(numbers)
    phase = 2.0 * math.pi * phase
    return ops.concatenate([ops.sin(phase), ops.cos(phase)], axis=-1)


def bin_edges(numeric: list[NumericColumn], bins: int) -> list[list[float]]:
    """Each column's bin edges: ``bins`` + 1 equally spaced quantiles of its scaled training
    values, read off the quantiles prepare kept, repeated edges dropped (a column of few
    distinct values gets fewer bins).

    Raises:
        RecipeError: the dataset was prepared before quantiles were kept.
    """
    stale = [n.column for n in numeric if not n.quantiles]
    if stale:
        raise RecipeError(
            "`model.numeric_embedding.kind: piecewise_linear` places its bins at the training "
            "split's quantiles, which this prepared dataset does not hold for "
            f"{', '.join(stale[:5])} (it was prepared by an older dltrain, or those columns "
            "have no value). Run `dltrain prepare --force` again, or use kind: periodic."
        )
    edges = []
    for column in numeric:
        assert column.quantiles is not None
        kept = np.linspace(0.0, 1.0, len(column.quantiles))
        wanted = np.interp(np.linspace(0.0, 1.0, bins + 1), kept, column.quantiles)
        distinct = np.unique(wanted.astype(np.float32))
        edges.append([float(e) for e in (distinct if len(distinct) > 1 else [0.0, 1.0])])
    return edges


@keras.saving.register_keras_serializable(package="dltrain")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """Piecewise-linear encoding of each column (Gorishniy et al. 2022): per bin, 0 below it,
    1 above it, and the position inside it; the first bin extends below its edge and the last
    above, so values beyond the training range still move the code. Columns with fewer bins
    than the widest are padded with bins that read 0.

    Input (batch, columns); output (batch, columns, bins of the widest column).

    Example:
        >>> layer = PiecewiseLinearEncoding([[0.0, 1.0, 3.0]])
        >>> keras.ops.convert_to_numpy(layer(np.array([[2.0]], "float32"))).tolist()
        [[[1.0, 0.5]]]
    """

    def __init__(self, edges: list[list[float]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edges = [list(map(float, e)) for e in edges]
        width = max(len(e) for e in self.edges) - 1
        shape = (len(edges), width)
        self._lower, self._span = np.zeros(shape, np.float32), np.ones(shape, np.float32)
        self._mask, self._floor = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self._ceiling = np.ones(shape, np.float32)
        for n, e in enumerate(self.edges):
            bins = len(e) - 1
            self._lower[n, :bins] = e[:-1]
            self._span[n, :bins] = np.diff(e)
            self._mask[n, :bins] = 1.0
            # the first bin has no floor and the last no ceiling
            self._floor[n, 0], self._ceiling[n, bins - 1] = -np.inf, np.inf

    def call(self, x: Any) -> Any:
        ops = keras.ops
        position = (ops.expand_dims(x, -1) - self._lower) / self._span
        return ops.clip(position, self._floor, self._ceiling) * self._mask

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[Any, ...]:
        return (*input_shape, self._lower.shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "edges": self.edges}
