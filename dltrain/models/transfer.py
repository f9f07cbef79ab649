"""Transfer learning: a keras.applications backbone, frozen at first, then fine-tuned.

The model takes raw images (any size, 1 or 3 channels): it resizes them, makes three channels
and applies the backbone's own input preprocessing, so nothing changes for predict or export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import FeatureKind
from dltrain.models.blocks import augment, dense_stack
from dltrain.models.io import ModelIO
from dltrain.models.mixing import BlendingTraining
from dltrain.recipe.models import Backbone, TransferSpec
from dltrain.recipe.schema import ScheduleName, SchedulePace, TrainSpec
from dltrain.training.compile import CompileParts
from dltrain.training.hooks import Phase

BACKBONE_LAYER = "backbone"


@dataclass(frozen=True)
class _Application:
    constructor: Any
    # What the backbone expects of 0-255 RGB pixels: x * scale + offset, then a per-channel
    # normalisation (mean, variance) for the ImageNet "torch" convention.
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, float, float] | None = None
    variance: tuple[float, float, float] | None = None


APPLICATIONS = {
    Backbone.MOBILENET_V2: _Application(keras.applications.MobileNetV2, 1 / 127.5, -1.0),
    # These two rescale inside the network and take 0-255 pixels as they are.
    Backbone.MOBILENET_V3_SMALL: _Application(keras.applications.MobileNetV3Small),
    Backbone.EFFICIENTNET_B0: _Application(keras.applications.EfficientNetB0),
    Backbone.DENSENET121: _Application(
        keras.applications.DenseNet121,
        1 / 255,
        0.0,
        (0.485, 0.456, 0.406),
        (0.229**2, 0.224**2, 0.225**2),
    ),
}


def build_transfer(spec: TransferSpec, io: ModelIO) -> keras.Model:
    """Build backbone + head; the backbone starts frozen when ``freeze_epochs`` > 0.

    Raises:
        RecipeError: the weights file does not exist or does not fit the backbone.
    """
    io.require("transfer", FeatureKind.IMAGE)
    features = io.image_features
    raw = keras.Input(shape=tuple(features.shape), dtype=features.dtype, name="input")
    app = APPLICATIONS[spec.backbone]
    # on the image's own pixels, before resizing: crop padding counts them, as --tta's views do
    x = augment(raw, spec.augmentation, io.image_pixel_range())
    x = keras.layers.Resizing(spec.image_size, spec.image_size, name="resize")(x)
    if features.shape[-1] == 1:
        x = keras.layers.Concatenate(name="to_rgb")([x, x, x])
    if app.scale != 1.0 or app.offset:
        x = keras.layers.Rescaling(app.scale, app.offset, name="backbone_scaling")(x)
    if app.mean is not None:
        x = keras.layers.Normalization(mean=app.mean, variance=app.variance, name="backbone_norm")(
            x
        )
    kwargs: dict[str, object] = {
        "input_shape": (spec.image_size, spec.image_size, 3),
        "include_top": False,
        "weights": None,
        "pooling": "avg",
    }
    if spec.backbone == Backbone.MOBILENET_V3_SMALL:
        kwargs["include_preprocessing"] = True
    backbone = app.constructor(**kwargs)
    backbone.name = BACKBONE_LAYER
    if spec.weights is not None:
        _load_weights(backbone, spec)
    backbone.trainable = spec.freeze_epochs == 0
    # training=False keeps the backbone's batch norm in inference mode, also when fine-tuning:
    # its statistics came from far more data than ours.
    x = backbone(x, training=False)
    x = dense_stack(x, spec.dense, spec)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(raw, io.head(x), name="transfer")


def unfreeze(model: keras.Model, spec: TransferSpec) -> int:
    """Make the backbone (or its top ``fine_tune_layers``) trainable; returns how many layers.

    The model must be compiled again afterwards, or Keras keeps training only the head.
    """
    backbone = model.get_layer(BACKBONE_LAYER)
    backbone.trainable = True
    layers = backbone.layers
    keep_frozen = len(layers) - spec.fine_tune_layers if spec.fine_tune_layers else 0
    for layer in layers[:keep_frozen]:
        layer.trainable = False
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # see build_transfer: BN stays as the backbone learned it
    return len(layers) - keep_frozen


def discriminative_factors(model: keras.Model, factor: float) -> dict[int, float]:
    """Each backbone variable's rate multiplier: ``factor`` at the bottom layer, 1 at the top.

    The backbone's layers with weights are numbered from the input up; layer ``i`` of ``n``
    gets ``factor ** (1 − i / (n − 1))``, so the multipliers rise geometrically (fastai's
    ``slice(lr · factor, lr)``). Variables left out (the head) keep the full rate.

    Args:
        model: a transfer model (build_transfer).
        factor: the bottom layer's multiplier, in (0, 1).

    Returns:
        Multipliers by ``id`` of each backbone variable.
    """
    layers = [layer for layer in model.get_layer(BACKBONE_LAYER).layers if layer.weights]
    last = max(1, len(layers) - 1)
    return {
        id(variable): factor ** (1 - index / last)
        for index, layer in enumerate(layers)
        for variable in layer.weights
    }


def use_discriminative_rates(
    optimizer: keras.optimizers.Optimizer, factors: dict[int, float]
) -> None:
    """Make ``optimizer`` update each variable at its own multiple of the learning rate.

    Keras 3 has one rate per optimizer. Its update step takes the rate as an argument, once
    for all variables; this splits the variables by multiplier and runs the update step once
    per group with the rate multiplied. That is exact for every optimizer here, Adam's family
    included (scaling its gradients would not scale its steps): moments, clipping and
    accumulation do not involve the rate. Decoupled weight decay is applied at the base rate.

    Args:
        optimizer: the optimizer to change (a mixed-precision wrapper's inner one).
        factors: multipliers by ``id`` of a variable; variables not named keep the rate.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    update = optimizer._backend_update_step

    def grouped(grads: list[Any], variables: list[Any], learning_rate: Any) -> None:
        groups: dict[float, tuple[list[Any], list[Any]]] = {}
        for grad, variable in zip(grads, variables, strict=True):
            group = groups.setdefault(factors.get(id(variable), 1.0), ([], []))
            group[0].append(grad)
            group[1].append(variable)
        for multiplier, (group_grads, group_variables) in groups.items():
            rate = learning_rate if multiplier == 1.0 else learning_rate * multiplier
            update(group_grads, group_variables, rate)

    # an instance attribute: the optimizer's class, and so its saved configuration, stay Keras's
    object.__setattr__(optimizer, "_backend_update_step", grouped)


class TransferTraining(BlendingTraining):
    """Transfer learning trains in two phases: the head on a frozen backbone for
    ``freeze_epochs``, then the unfrozen backbone too at a lower rate; MixUp and CutMix blend
    its training batches as a CNN's (models/mixing.py)."""

    spec: TransferSpec

    def phases(self, train: TrainSpec, initial_epoch: int) -> list[Phase]:
        """Frozen, then fine-tuning; one phase when the freeze lasts the whole run, or when a
        resumed run is past it (fine-tuning, from a checkpoint already unfrozen).

        Keras must compile again after unfreezing, or it trains the head only: the second
        phase's ``prepare`` unfreezes and its settings compile at the fine-tuning rate.
        """
        freeze = self.spec.freeze_epochs
        if not 0 < freeze < train.epochs:
            return super().phases(train, initial_epoch)
        if train.lr_schedule.pace == SchedulePace.TIME_BUDGET:
            # Each phase compiles a schedule of its own; how the budget would split between
            # them is a choice the recipe does not state.
            raise RecipeError(
                f"`train.lr_schedule.pace` is time_budget, but this model trains in two phases "
                f"(frozen for model.freeze_epochs={freeze}, then fine-tuned), each with a "
                f"schedule of its own, and one budget cannot pace both. Set model.freeze_epochs "
                f"to 0, or remove pace to count each phase's schedule in epochs."
            )
        fine_rate = train.optimizer.learning_rate * self.spec.fine_tune_learning_rate
        fine_train = train.model_copy(
            update={"optimizer": train.optimizer.model_copy(update={"learning_rate": fine_rate})}
        )
        frozen_train = train
        if train.lr_schedule.name == ScheduleName.ONE_CYCLE:
            # fastai's fine_tune: one cycle per phase, each over that phase's epochs
            frozen_train = train.model_copy(update={"epochs": freeze})
            fine_train = fine_train.model_copy(update={"epochs": train.epochs - freeze})
        if initial_epoch >= freeze:
            return [Phase(train.epochs, fine_train)]
        return [
            Phase(freeze, frozen_train),
            Phase(train.epochs, fine_train, prepare=lambda model: unfreeze(model, self.spec)),
        ]

    def compile(self, model: keras.Model, parts: CompileParts, train: TrainSpec) -> None:
        """Compile as every predictor does, with discriminative rates when the recipe asks."""
        super().compile(model, parts, train)
        if self.spec.discriminative_lr is not None:
            factors = discriminative_factors(model, self.spec.discriminative_lr)
            use_discriminative_rates(model.optimizer, factors)

    def averaging_reason(self, train: TrainSpec) -> str | None:
        """SWA's average cannot span the frozen and the fine-tuning phases: each compiles an
        optimizer of its own over other variables. EMA starts afresh in each phase."""
        if train.swa.enabled and 0 < self.spec.freeze_epochs < train.epochs:
            return (
                "train.swa averages the weights of one phase, but this model trains in two "
                f"(frozen for model.freeze_epochs={self.spec.freeze_epochs}, then fine-tuned); "
                "set model.freeze_epochs to 0, or use train.optimizer.ema"
            )
        return None


def _load_weights(backbone: keras.Model, spec: TransferSpec) -> None:
    path = spec.weights
    assert path is not None
    if not path.is_file():
        raise RecipeError(
            f"`model.weights` is {path}, which does not exist. Expected a weights file for the "
            f"{spec.backbone.value} backbone without its top (Keras's *_notop.h5, or a "
            f".weights.h5 saved from the same backbone). Download it once and point to it, or "
            f"set `model.weights: null` to start from random weights."
        )
    try:
        backbone.load_weights(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise RecipeError(
            f"`model.weights` {path} does not fit the {spec.backbone.value} backbone at "
            f"image_size {spec.image_size} ({str(exc)[:200]}). Use the no-top weights of this "
            f"very backbone."
        ) from None
