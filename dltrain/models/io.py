"""A model's two ends, built from the prepared dataset's manifest.

Builders only make the middle: ``raw, x = io.inputs()`` gives the raw inputs the saved model
accepts and the encoded tensor to build on; ``io.head(x)`` gives the outputs for the task. So a
new data kind (tables, text, windows) or a new task never touches a builder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import (
    ClassTarget,
    FeatureKind,
    ImageFeatures,
    ImagePreprocessing,
    Manifest,
    NumericTarget,
    SequenceFeatures,
    SeriesLayout,
    TargetTransformFit,
)
from dltrain.recipe.data import TargetTransform
from dltrain.tasks import Task

# What each feature kind's encoded tensor is, for error messages and family checks.
ENCODED = {
    FeatureKind.IMAGE: "images (height, width, channels), scaled",
    FeatureKind.TABLE: "table rows (one flat vector: normalised numbers, encoded categories)",
    FeatureKind.TEXT: "texts (token ids, sequence_length long)",
    FeatureKind.SEQUENCE: "time-series windows (lookback, features), standardised",
}


@dataclass(frozen=True)
class ModelIO:
    """The inputs and output head of a model for one prepared dataset."""

    manifest: Manifest
    clip_to_target_range: bool = False

    def clipped(self) -> ModelIO:
        """The same, with regression heads clipped to the training split's target range.

        Raises:
            RecipeError: a classification task, or data prepared before prepare stored the
                target's range.
        """
        if self.task.is_classification:
            raise RecipeError(
                f"`model.clip_to_target_range` clips regression and forecasting predictions, but "
                f"this dataset's task is {self.task.value}. Remove it."
            )
        return replace(self, clip_to_target_range=True)

    @property
    def task(self) -> Task:
        return self.manifest.task

    @property
    def kind(self) -> FeatureKind:
        return self.manifest.features.kind

    def inputs(self) -> tuple[Any, keras.KerasTensor]:
        """The raw model input(s) and the encoded tensor builders work on.

        The preprocessing fitted by prepare (scaling, vocabularies, …) lives in these layers, so
        the saved model takes raw data as the source had it.
        """
        from dltrain.models import encoders

        build = {
            FeatureKind.IMAGE: encoders.image_inputs,
            FeatureKind.TABLE: encoders.table_inputs,
            FeatureKind.TEXT: encoders.text_inputs,
            FeatureKind.SEQUENCE: encoders.sequence_inputs,
        }[self.kind]
        return build(self.manifest)

    def head(self, x: keras.KerasTensor, prefix: str = "", window: Any = None) -> keras.KerasTensor:
        """The output layer(s) for the task, kept in float32 even under mixed precision.

        Classification: class probabilities. Regression and forecasting: the network predicts
        standardised targets and a last layer turns them back into the target's own units with
        the training split's mean and standard deviation, so predictions, losses and metrics
        read in those units; with ``clip_to_target_range`` predictions (not training outputs)
        are then clipped to the training split's target range. ``prefix`` names the layers of
        one of several heads (ensembles). With ``data.target_transform`` (regression) the
        network predicts the standardised transformed target (log y) and the last layer undoes
        the transform, so predictions still read in the target's units.

        Forecasting with a series transform (``data.series.transform``) needs ``window``, the
        raw window input: the network predicts each target's departure from a simple forecast
        made from it (the last value, the value a season before, or the last value along the
        training trend; ``data/preparation/forecast_base.py``), in units of that departure's
        root mean square over the training windows. Its last layer starts at zero, so an
        untrained model forecasts exactly the simple forecast.
        """
        target = self.manifest.target
        if isinstance(target, ClassTarget):
            return keras.layers.Dense(
                target.num_classes,
                activation="softmax",
                dtype="float32",
                name=f"{prefix}probabilities",
            )(x)
        return self._numeric_head(x, target, prefix, window)

    def _numeric_head(
        self, x: keras.KerasTensor, target: NumericTarget, prefix: str, window: Any
    ) -> keras.KerasTensor:
        mean = [float(v) for v in target.mean]
        std = [float(v) or 1.0 for v in target.std]
        outputs = len(mean)
        if len(x.shape) > 2:
            x = keras.layers.Flatten(name=f"{prefix}head_flatten")(x)
        layout = self.manifest.series
        if self.task == Task.FORECASTING and layout is not None and layout.residual_rms:
            x = self._residual_head(x, target, layout, prefix, window)
        elif self.task == Task.FORECASTING:
            horizon = int(target.horizon or 1)
            x = keras.layers.Dense(
                horizon * outputs, dtype="float32", name=f"{prefix}standardized"
            )(x)
            x = keras.layers.Reshape((horizon, outputs), name=f"{prefix}steps")(x)
            x = keras.layers.Rescaling(std, mean, dtype="float32", name=f"{prefix}target_units")(x)
        elif target.transform is not None:
            x = self._transformed_head(x, target.transform, prefix)
        else:
            x = keras.layers.Dense(outputs, dtype="float32", name=f"{prefix}standardized")(x)
            x = keras.layers.Rescaling(std, mean, dtype="float32", name=f"{prefix}target_units")(x)
        if self.clip_to_target_range:
            low = [float(v) for v in target.min]
            high = [float(v) for v in target.max]
            # float32 under mixed precision too: float16 would turn a $500,001 cap into inf
            x = ClipToRange(low, high, dtype="float32", name=f"{prefix}clip_to_target_range")(x)
        return x

    def _transformed_head(
        self, x: keras.KerasTensor, transform: TargetTransformFit, prefix: str
    ) -> keras.KerasTensor:
        """``data.target_transform``: the standardised transformed target, then its inverse."""
        outputs = len(transform.mean)
        x = keras.layers.Dense(outputs, dtype="float32", name=f"{prefix}standardized")(x)
        x = keras.layers.Rescaling(
            [float(v) or 1.0 for v in transform.std],
            [float(v) for v in transform.mean],
            dtype="float32",
            name=f"{prefix}transformed_target",
        )(x)
        # float32 even under mixed precision: exp of a log price passes float16's 65,504
        return UntransformTarget(
            transform.name.value, dtype="float32", name=f"{prefix}target_units"
        )(x)

    def _residual_head(
        self,
        x: keras.KerasTensor,
        target: NumericTarget,
        layout: SeriesLayout,
        prefix: str,
        window: Any,
    ) -> keras.KerasTensor:
        """The simple forecast from the raw window plus the network's scaled departure from it."""
        from dltrain.data.preparation.forecast_base import base_offsets, base_steps

        if window is None:
            raise RecipeError(
                "This model family cannot forecast with `data.series.transform: "
                f"{layout.transform.value}` (its head gets no raw window). Prepare the data "
                "with `transform: none`, or use model.family rnn."
            )
        assert layout.residual_rms is not None
        ops = keras.ops
        horizon, outputs = int(target.horizon or 1), len(target.columns)
        features = self.manifest.features
        assert isinstance(features, SequenceFeatures)
        columns = features.columns
        steps = base_steps(layout.transform, int(window.shape[1]), horizon, layout.season)
        index = np.array([columns.index(c) for c in target.columns], np.int64)
        base = ops.take(ops.take(window, steps, axis=1), index, axis=2)
        base = ops.cast(base, "float32") + base_offsets(layout.trend_slope, horizon, outputs)
        x = keras.layers.Dense(
            horizon * outputs,
            dtype="float32",
            kernel_initializer="zeros",  # the untrained model forecasts the simple forecast
            name=f"{prefix}standardized",
        )(x)
        x = keras.layers.Reshape((horizon, outputs), name=f"{prefix}steps")(x)
        return x * np.asarray(layout.residual_rms, np.float32) + base

    def image_value_range(self) -> tuple[float, float]:
        """The range of scaled pixel values (what 0 and 255, or the data's range, become)."""
        return self.manifest.preprocessing_as(ImagePreprocessing).value_range()

    def image_pixel_range(self) -> tuple[float, float]:
        """The range of raw pixel values, before scaling (families that scale their own way)."""
        low, high = self.manifest.preprocessing_as(ImagePreprocessing).pixel_range
        return float(low), float(high)

    @property
    def image_features(self) -> ImageFeatures:
        """The image shape and dtype (families that only read images)."""
        features = self.manifest.features
        assert isinstance(features, ImageFeatures), "call require(family, IMAGE) first"
        return features

    def require(self, family: str, *kinds: FeatureKind) -> None:
        """Refuse a model family that cannot read this data.

        Raises:
            RecipeError: the family does not take this feature kind.
        """
        if self.kind not in kinds:
            raise RecipeError(
                f"Model family {family!r} takes {' or '.join(ENCODED.get(k, k) for k in kinds)}, "
                f"but the prepared dataset holds {ENCODED.get(self.kind, self.kind)} features. "
                f"Pick a family that reads them (`model.family`)."
            )


@keras.saving.register_keras_serializable(package="dltrain")
class UntransformTarget(keras.layers.Layer):
    """Turn predictions of a transformed target back into the target's units (``log``: exp).

    Example:
        >>> y = UntransformTarget("log")(keras.ops.array([[0.0], [1.0]]))
        >>> [round(v, 4) for v in keras.ops.convert_to_numpy(y)[:, 0].tolist()]
        [1.0, 2.7183]
    """

    def __init__(self, transform: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if transform != TargetTransform.LOG.value:
            raise ValueError(f"Argument `transform` must be 'log'. Received: {transform!r}")
        self.transform = transform

    def call(self, x: Any) -> Any:
        return keras.ops.exp(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "transform": self.transform}


@keras.saving.register_keras_serializable(package="dltrain")
class ClipToRange(keras.layers.Layer):
    """Clip predictions to [low, high] per output column; training outputs pass unclipped.

    Only predictions are clipped: in training, a clipped output would give no gradient to a row
    predicted beyond the range, so a capped target (California's $500,001) would let the
    network overshoot freely on capped rows and on their neighbours. Validation metrics,
    evaluate and predict all see the clipped values.

    Example:
        >>> clipped = ClipToRange([0.0], [1.0])(keras.ops.array([[2.0], [-1.0], [0.5]]))
        >>> keras.ops.convert_to_numpy(clipped).tolist()
        [[1.0], [0.0], [0.5]]
    """

    def __init__(self, low: list[float], high: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.low, self.high = list(low), list(high)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if training:
            return x
        return keras.ops.clip(x, self.low, self.high)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "low": self.low, "high": self.high}
