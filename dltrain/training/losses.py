"""The loss and the metrics training logs, by task.

Classification labels are integer class indices and models output softmax probabilities (binary
included, as two classes). Keras's label smoothing and focal losses want one-hot targets, so
``SparseFocalCrossentropy`` takes integer labels and does both; with ``gamma=0`` and no alpha it
is cross-entropy, which is why every cross-entropy name works on the same labels. Under MixUp or
CutMix (models/mixing.py) the labels are class probabilities instead, which it takes as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import Manifest, NumericTarget
from dltrain.recipe.data import TargetTransform
from dltrain.recipe.schema import CROSSENTROPY_LOSSES, LossName, LossSpec
from dltrain.tasks import Task

_NUMERIC_LOSSES = (LossName.MSE, LossName.MAE, LossName.HUBER)
_CLASS_LOSSES = (*CROSSENTROPY_LOSSES, LossName.FOCAL)


def default_loss(task: Task) -> str:
    """Cross-entropy for classes (integer labels); mean squared error for numbers."""
    return "sparse_categorical_crossentropy" if task.is_classification else "mse"


def training_metrics(task: Task) -> list[Any]:
    """Metrics logged every epoch (and their ``val_`` twins); regression ones in target units."""
    if task.is_classification:
        return ["accuracy"]
    return [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.RootMeanSquaredError(name="rmse"),
    ]


def logged_names(task: Task) -> list[str]:
    """Every name an epoch's logs carry, for checking ``monitor`` before training starts."""
    if task == Task.RECONSTRUCTION:
        names = ["loss"]  # the mean reconstruction error
    elif task == Task.GENERATION:
        names = ["loss", "d_loss", "g_loss"]  # loss = d_loss + g_loss
    elif task.is_classification:
        names = ["loss", "accuracy"]
    else:
        names = ["loss", "mae", "rmse"]
    return [*names, *(f"val_{n}" for n in names)]


@keras.saving.register_keras_serializable(package="dltrain")
class SparseFocalCrossentropy(keras.losses.Loss):
    """Focal cross-entropy on integer labels and class probabilities.

    Per example, with targets ``y = (1 − ε)·one_hot(label) + ε/K`` (or ``(1 − ε)·label + ε/K``
    for labels that are already one probability per class, as MixUp and CutMix make them)::

        loss = −Σ_k y_k · α_k · (1 − p_k)^γ · log p_k

    which for ε = 0 is ``−α_c (1 − p_c)^γ log p_c`` on the true class c (Lin et al., 2017).
    With two classes and ``alpha=[1 − a, a]`` it equals Keras's ``BinaryFocalCrossentropy``
    with ``apply_class_balancing=True, alpha=a``; with ``gamma=0`` and no alpha it is
    (label-smoothed) categorical cross-entropy.

    Example: ``SparseFocalCrossentropy(num_classes=3, gamma=2.0)([2], [[0.1, 0.2, 0.7]])`` is
    ``−0.3² · log 0.7``.

    Args:
        num_classes: K, the width of the probabilities.
        gamma: the focusing exponent (≥ 0).
        alpha: one weight per class, or None for 1 each.
        label_smoothing: ε in [0, 1).
    """

    def __init__(
        self,
        num_classes: int,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        name: str = "sparse_focal_crossentropy",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if num_classes < 2:
            raise ValueError(f"Argument `num_classes` must be >= 2. Received: {num_classes}")
        if gamma < 0:
            raise ValueError(f"Argument `gamma` must be >= 0. Received: {gamma}")
        if alpha is not None and len(alpha) != num_classes:
            raise ValueError(
                f"Argument `alpha` needs one weight per class ({num_classes}). Received: {alpha}"
            )
        if not 0 <= label_smoothing < 1:
            raise ValueError(
                f"Argument `label_smoothing` must be in [0, 1). Received: {label_smoothing}"
            )
        self.num_classes = int(num_classes)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else [float(a) for a in alpha]
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        if _soft(y_true, y_pred):  # class probabilities already (MixUp, CutMix)
            targets = ops.cast(y_true, y_pred.dtype)
        else:
            if len(y_true.shape) == len(y_pred.shape):  # labels shaped (batch, 1)
                y_true = ops.squeeze(y_true, axis=-1)
            targets = ops.one_hot(ops.cast(y_true, "int32"), self.num_classes, dtype=y_pred.dtype)
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + (
                self.label_smoothing / self.num_classes
            )
        epsilon = keras.config.epsilon()
        probabilities = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        per_class = -targets * ops.log(probabilities)
        if self.gamma:
            per_class = per_class * ops.power(1.0 - probabilities, self.gamma)
        if self.alpha is not None:
            per_class = per_class * ops.convert_to_tensor(self.alpha, dtype=y_pred.dtype)
        return ops.sum(per_class, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            num_classes=self.num_classes,
            gamma=self.gamma,
            alpha=self.alpha,
            label_smoothing=self.label_smoothing,
        )
        return config


def _soft(y_true: Any, y_pred: Any) -> bool:
    """Whether ``y_true`` holds one probability per class rather than class indices."""
    return len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1] != 1


def make_loss(
    spec: LossSpec, task: Task, num_classes: int | None = None, *, soft_labels: bool = False
) -> keras.losses.Loss:
    """The Keras loss for the recipe's ``train.loss`` on a dataset of ``task``.

    Plain cross-entropy stays Keras's own ``SparseCategoricalCrossentropy`` (its fused kernel);
    label smoothing, focal and class-balanced alpha use ``SparseFocalCrossentropy``. With
    ``soft_labels`` (MixUp, CutMix: one probability per class) plain cross-entropy is
    ``CategoricalCrossentropy``; ``SparseFocalCrossentropy`` takes either kind of label.

    Args:
        spec: the recipe's ``train.loss``.
        task: what the prepared dataset's model predicts.
        num_classes: classes in the dataset (classification only).
        soft_labels: the labels are class probabilities, not class indices.

    Returns:
        The loss object to compile with.

    Raises:
        RecipeError: a loss for the other kind of target, binary cross-entropy on more than two
            classes, an alpha list of the wrong length, or soft labels for numeric targets.
    """
    name = spec.name
    if soft_labels and not task.is_classification:
        raise RecipeError(
            f"`model.augmentation` sets mixup or cutmix, which blend pairs of examples and "
            f"their class labels, but the prepared dataset's task is {task.value}: there are no "
            f"classes to blend. Remove model.augmentation.mixup and .cutmix (flips, crops and "
            f"the other augmentations work for any task)."
        )
    if task.is_classification:
        if name in _NUMERIC_LOSSES:
            raise RecipeError(
                f"`train.loss.name` is {name.value}, a loss for numeric targets, but the prepared "
                f"dataset's task is {task.value}: the model outputs class probabilities. Expected "
                f"one of auto, {', '.join(n.value for n in _CLASS_LOSSES)}."
            )
        classes = int(num_classes or 0)
        if name == LossName.BINARY_CROSSENTROPY and classes != 2:
            raise RecipeError(
                f"`train.loss.name` is binary_crossentropy, but the prepared dataset has {classes} "
                f"classes. Expected categorical_crossentropy (or auto, or focal) for more than two "
                f"classes."
            )
        alpha = _alpha_per_class(spec.alpha, classes)
        gamma = spec.gamma if name == LossName.FOCAL else 0.0
        if not gamma and alpha is None and not spec.label_smoothing:
            if soft_labels:
                return keras.losses.CategoricalCrossentropy()
            return keras.losses.SparseCategoricalCrossentropy()
        return SparseFocalCrossentropy(
            classes, gamma=gamma, alpha=alpha, label_smoothing=spec.label_smoothing
        )
    if name in _CLASS_LOSSES or spec.label_smoothing:
        raise RecipeError(
            f"`train.loss` is {name.value}"
            f"{f' with label_smoothing {spec.label_smoothing}' if spec.label_smoothing else ''}, "
            f"a classification loss, but the prepared dataset's task is {task.value}: the model "
            f"predicts numbers. Expected one of auto, mse, mae, huber."
        )
    if name == LossName.MAE:
        return keras.losses.MeanAbsoluteError()
    if name == LossName.HUBER:
        return keras.losses.Huber(delta=spec.delta)
    return keras.losses.MeanSquaredError()


def on_target_scale(loss: keras.losses.Loss, task: Task, manifest: Manifest) -> keras.losses.Loss:
    """``loss``, computed on the transformed target where ``data.target_transform`` says so.

    Args:
        loss: the loss ``make_loss`` made.
        task: what the model predicts (a reconstruction of a regression table is no regression).
        manifest: the prepared dataset's manifest (its target's transform).

    Returns:
        ``loss`` itself, or a ``TransformedTargetLoss`` around it.
    """
    target = manifest.target
    transform = target.transform if isinstance(target, NumericTarget) else None
    if task != Task.REGRESSION or transform is None:
        return loss
    return TransformedTargetLoss(loss, transform.name.value)


@keras.saving.register_keras_serializable(package="dltrain")
class TransformedTargetLoss(keras.losses.Loss):
    """A regression loss between the transformed targets and predictions (``log``: their logs).

    The model predicts in the target's units (its last layer undoes the transform), so the
    loss takes the transform of both sides: with ``log`` a squared error weighs a 10% miss on a
    cheap house as on a dear one, and ``huber``'s ``delta`` reads in log units (0.1 ≈ 10%). The
    logged ``mae`` and ``rmse`` stay in the target's units.

    Example:
        >>> loss = TransformedTargetLoss(keras.losses.MeanSquaredError(), "log")
        >>> round(float(loss([[1.0], [10.0]], [[2.718281828], [10.0]])), 4)
        0.5

    Args:
        loss: the loss on the transformed scale (its reduction is this loss's own).
        transform: ``log``, the only one (``data.target_transform``).
    """

    def __init__(
        self,
        loss: keras.losses.Loss,
        transform: str = TargetTransform.LOG.value,
        name: str = "transformed_target_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if transform != TargetTransform.LOG.value:
            raise ValueError(f"Argument `transform` must be 'log'. Received: {transform!r}")
        self.loss = loss
        self.transform = transform

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred)
        tiny = keras.config.epsilon()  # prepare refuses targets <= 0; exp is never 0 in range
        log_true = ops.log(ops.maximum(ops.convert_to_tensor(y_true, y_pred.dtype), tiny))
        return self.loss.call(log_true, ops.log(ops.maximum(y_pred, tiny)))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(loss=keras.saving.serialize_keras_object(self.loss), transform=self.transform)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TransformedTargetLoss:
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)


def _alpha_per_class(alpha: float | list[float] | None, num_classes: int) -> list[float] | None:
    if alpha is None:
        return None
    if isinstance(alpha, list):
        if len(alpha) != num_classes:
            raise RecipeError(
                f"`train.loss.alpha` lists {len(alpha)} weight(s), but the prepared dataset has "
                f"{num_classes} classes. Expected one weight per class, in label order, or a "
                f"single number."
            )
        return alpha
    if num_classes == 2:  # Lin et al.'s convention: alpha for the positive class
        return [1.0 - alpha, alpha]
    return [alpha] * num_classes
